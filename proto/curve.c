/*
 * curve.c - CURVE key pairs and their files. See curve.h.
 */
#include "proto/curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/afile.h"

#define KEY_LINE_MAX 256

int curve_available(void)
{
    return zmq_has("curve") ? 1 : 0;
}

int curve_z85_valid(const char *text, size_t len)
{
    char z[CURVE_Z85_LEN + 1];
    unsigned char bin[32];

    if (len != CURVE_Z85_LEN)
        return 0;
    memcpy(z, text, len);
    z[len] = '\0';
    return zmq_z85_decode(bin, z) != NULL;
}

void curve_z85_encode(char *out, const unsigned char key[32])
{
    zmq_z85_encode(out, key, 32);
}

/* Write text to a new file (O_EXCL) of the given mode and fsync it. */
static int write_new(const char *path, const char *text, mode_t mode, errbuf_t *eb)
{
    size_t len = strlen(text), off = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

    if (fd < 0)
        return errbuf_set(eb, errno == EEXIST ? ERR_EXISTS : ERR_IO, "create %s: %s%s", path,
                          strerror(errno),
                          errno == EEXIST ? " (keys are never overwritten: remove it or choose "
                                            "another name)"
                                          : "");
    /* the mode given to open() is reduced by the umask, never widened */
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        off += (size_t)n;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:
    errbuf_set(eb, ERR_IO, "write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(path);
    return ERR_IO;
}

int curve_keygen(const char *base, curve_pair_t *out, errbuf_t *eb)
{
    char kpath[DIRS_PATH_MAX], ppath[DIRS_PATH_MAX], text[KEY_LINE_MAX * 2];
    curve_pair_t p;
    int rc;

    if (!curve_available())
        return errbuf_set(eb, ERR_INVAL,
                          "this libzmq was built without CURVE (libsodium): no keys can be made");
    if ((size_t)snprintf(kpath, sizeof(kpath), "%s.key", base) >= sizeof(kpath) ||
        (size_t)snprintf(ppath, sizeof(ppath), "%s.pub", base) >= sizeof(ppath))
        return errbuf_set(eb, ERR_INVAL, "key name too long: %s", base);
    if (access(ppath, F_OK) == 0)
        return errbuf_set(eb, ERR_EXISTS,
                          "%s exists (keys are never overwritten: remove it or choose another "
                          "name)",
                          ppath);
    memset(&p, 0, sizeof(p));
    if (zmq_curve_keypair(p.pub, p.sec) != 0)
        return errbuf_set(eb, ERR_INVAL, "zmq_curve_keypair: %s", zmq_strerror(errno));
    snprintf(text, sizeof(text),
             "# funnel CURVE key pair: SECRET, keep mode 0600\n"
             "public-key = %s\nsecret-key = %s\n",
             p.pub, p.sec);
    rc = write_new(kpath, text, 0600, eb);
    memset(text, 0, sizeof(text));
    if (rc != 0)
        goto out;
    snprintf(text, sizeof(text), "# funnel CURVE public key\npublic-key = %s\n", p.pub);
    rc = write_new(ppath, text, 0644, eb);
    if (rc != 0) {
        unlink(kpath);
        goto out;
    }
    rc = afile_fsync_parent(kpath, eb);
    if (rc == 0 && out)
        *out = p;
out:
    memset(&p, 0, sizeof(p));
    return rc;
}

/* Read `name = value` lines into out; want_sec: the secret key is needed. */
static int load(const char *path, curve_pair_t *out, int want_sec, errbuf_t *eb)
{
    char line[KEY_LINE_MAX];
    FILE *f;
    int ln = 0, rc = 0;

    memset(out, 0, sizeof(*out));
    f = fopen(path, "r");
    if (!f)
        return errbuf_set(eb, ERR_IO, "open key file %s: %s", path, strerror(errno));
    if (want_sec) {
        struct stat st;
        if (fstat(fileno(f), &st) != 0) {
            rc = errbuf_set(eb, ERR_IO, "stat %s: %s", path, strerror(errno));
            goto out;
        }
        if (st.st_mode & 077) {
            rc = errbuf_set(eb, ERR_CONFIG,
                            "key file %s may be read by others (mode %04o): chmod 600 %s, and "
                            "make a new key pair if anyone could have copied it",
                            path, (unsigned)(st.st_mode & 07777), path);
            goto out;
        }
    }
    while (fgets(line, sizeof(line), f)) {
        char *p = line, *eq, *v;
        size_t n;
        ln++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = errbuf_set(eb, ERR_CONFIG, "%s:%d: line too long for a key file", path, ln);
            goto out;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
            continue;
        eq = strchr(p, '=');
        if (!eq) {
            rc = errbuf_set(eb, ERR_CONFIG,
                            "%s:%d: expected 'public-key = ...' or "
                            "'secret-key = ...'",
                            path, ln);
            goto out;
        }
        for (n = (size_t)(eq - p); n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'); n--)
            ;
        v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strcspn(v, " \t\r\n");
        char *dst = NULL;
        if (n == 10 && memcmp(p, "public-key", 10) == 0)
            dst = out->pub;
        else if (n == 10 && memcmp(p, "secret-key", 10) == 0)
            dst = out->sec;
        if (!dst) {
            rc = errbuf_set(eb, ERR_CONFIG, "%s:%d: unknown entry '%.*s'", path, ln, (int)n, p);
            goto out;
        }
        if (!curve_z85_valid(v, vl)) {
            rc = errbuf_set(eb, ERR_CONFIG, "%s:%d: not a 40-character Z85 key", path, ln);
            goto out;
        }
        memcpy(dst, v, vl);
        dst[vl] = '\0';
    }
    if (ferror(f)) {
        rc = errbuf_set(eb, ERR_IO, "read %s: %s", path, strerror(errno));
        goto out;
    }
    if (!out->pub[0] || (want_sec && !out->sec[0])) {
        rc = errbuf_set(eb, ERR_CONFIG, "%s: no %s (make keys with funnel-ps keygen --out NAME)",
                        path, out->pub[0] ? "secret-key line" : "public-key line");
        goto out;
    }
    if (want_sec) {
        char derived[CURVE_Z85_LEN + 1];
        if (zmq_curve_public(derived, out->sec) != 0 || strcmp(derived, out->pub) != 0)
            rc =
                errbuf_set(eb, ERR_CONFIG,
                           "%s: its public key does not belong to its secret key (damaged?)", path);
    }
out:
    if (!want_sec || rc != 0)
        memset(out->sec, 0, sizeof(out->sec));
    memset(line, 0, sizeof(line));
    fclose(f);
    return rc;
}

int curve_load_pair(const char *path, curve_pair_t *out, errbuf_t *eb)
{
    return load(path, out, 1, eb);
}

int curve_load_public(const char *path, curve_pair_t *out, errbuf_t *eb)
{
    return load(path, out, 0, eb);
}
