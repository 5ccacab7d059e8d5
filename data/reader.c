/*
 * reader.c - tsv1 / Ali-CCP logs into training batches. See reader.h for
 * the input set, the split across workers and the meaning of positions.
 *
 * Files come from linesrc (plain or gzip lines, in place); Ali-CCP lines
 * are parsed by aliccp.c; tsv1 lines are parsed here. This file owns what
 * is common to both formats: which lines belong to this rank, positions,
 * the accounting of rejected lines and the summary.
 *
 * Reading state: `cur` is the data file being read and `src` its open line
 * source (NULL before the rank's part of it is opened). `line` counts the
 * lines of file cur consumed so far; when the rank started inside a plain
 * file it counts from offset `line_from` until a report needs the true
 * number, then the lines before line_from are counted once and added.
 */
#define _GNU_SOURCE
#include "data/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/keyhash.h"
#include "common/log.h"
#include "data/aliccp.h"
#include "data/linesrc.h"
#include "data/tokens.h"

enum {
    SPLIT_BYTES = 0, /* plain file: a byte range of line starts per rank */
    SPLIT_WHOLE = 1, /* gzip file, at least W of them: whole file per rank */
    SPLIT_LINES = 2, /* gzip file, fewer than W: line index modulo W */
};

typedef struct rfile {
    char *path;
    int gz;          /* 1: gzip-compressed */
    int split;       /* SPLIT_* */
    int owned;       /* SPLIT_WHOLE: this rank reads the file */
    uint64_t size;   /* bytes on disk */
    uint64_t lo, hi; /* SPLIT_BYTES: this rank owns lines starting in [lo, hi) */
} rfile_t;

struct reader {
    model_spec_t ms; /* copy: the slot table points into it */
    tokens_slots_t slots;
    reader_opts_t o;
    rfile_t *file; /* data files */
    int nfiles, filecap;
    char **join_path; /* Ali-CCP join tables (loaded at open) */
    int njoin, joincap;
    aliccp_join_t *join; /* NULL for tsv1 */

    int cur;             /* data file being read; nfiles when done */
    linesrc_t *src;      /* part of file cur being read, or NULL */
    uint64_t line;       /* lines of file cur consumed (see the top) */
    uint64_t line_from;  /* offset where `line` started counting */
    int line_known;      /* `line` counts from the start of the file */
    reader_pos_t cursor; /* after the last line consumed */
    reader_pos_t told;   /* after the last successful reader_next_batch() */

    int reported; /* rejected lines logged one by one */
    reader_stats_t st;

    /* Request boundaries (reader.h, "Requests"): rows read past the end of
     * the last batch, delivered first by the next call. */
    batch_t carry;          /* slot NULL until first needed */
    reader_pos_t *row_at;   /* per row of the batch being filled: cursor before its line */
    reader_pos_t *carry_at; /* the same for the rows of carry */
    size_t at_cap;          /* entries of row_at and carry_at */
};

/* ---- tsv1 ---------------------------------------------------------------- */

static int label_of(char c)
{
    return c == '0' ? 0 : c == '1' ? 1 : -1;
}

/*
 * Labels of a tsv1 line: exactly four TAB columns, the first three "0" or
 * "1". Returns 0 with *feat at the features column, or a reason.
 */
static int tsv1_labels(const char *p, size_t len, int lab[3], const char **feat, tokens_bad_t *bad)
{
    const char *end = p + len;

    if (len >= 6 && p[1] == '\t' && p[3] == '\t' && p[5] == '\t' &&
        (lab[0] = label_of(p[0])) >= 0 && (lab[1] = label_of(p[2])) >= 0 &&
        (lab[2] = label_of(p[4])) >= 0) {
        *feat = p + 6;
        if (memchr(*feat, '\t', (size_t)(end - *feat)))
            return TOKENS_R_COLUMNS;
        return 0;
    }
    /* Not three one-byte labels: count the columns, then look closer. */
    const char *col = p, *tab[3];
    int ntab = 0;

    for (const char *q = p; (q = memchr(q, '\t', (size_t)(end - q))) != NULL; q++) {
        if (ntab == 3)
            return TOKENS_R_COLUMNS;
        tab[ntab++] = q;
    }
    if (ntab != 3)
        return TOKENS_R_COLUMNS;
    for (int i = 0; i < 3; i++) {
        if (tab[i] - col != 1 || (lab[i] = label_of(col[0])) < 0)
            return tokens_reject(bad, col, (size_t)(tab[i] - col), TOKENS_R_LABEL);
        col = tab[i] + 1;
    }
    *feat = col;
    return 0;
}

/* A malformed token at tok: undo the row, point at the token. */
static int malformed(batch_t *b, tokens_bad_t *bad, const char *tok, const char *end)
{
    const char *q = tok;

    while (q < end && *q != ' ')
        q++;
    batch_row_cancel(b);
    return tokens_reject(bad, tok, (size_t)(q - tok), TOKENS_R_TOKEN);
}

/* The optional per-line fields of a tsv1 line (FORMAT.md, "Sample weight
 * and request id"). */
typedef struct line_meta {
    float weight; /* @w, 1 if absent */
    uint64_t req; /* hash of @req, 0 if absent */
    int has_w, has_req;
} line_meta_t;

#define REQ_SEED 0x7265717565737431ull /* seed of the request id hash ("requst1") */

/*
 * A token at tok whose name [tok, colon) starts with '@': if it is @w or
 * @req, read its value (from colon + 1 to the next space; *q is left
 * there) into m and return 0, or a reason (> 0) for a bad one. Returns -1
 * for any other name: an ordinary token (an undeclared slot, unless the
 * config declares it).
 */
static int line_field(const char *tok, const char *colon, const char **q, const char *end,
                      line_meta_t *m, tokens_bad_t *bad)
{
    size_t nlen = (size_t)(colon - tok);
    const char *val = colon + 1, *e = val;
    int is_w = nlen == 2 && tok[1] == 'w', is_req = nlen == 4 && memcmp(tok, "@req", 4) == 0;

    if (!is_w && !is_req)
        return -1;
    while (e < end && *e != ' ')
        e++;
    *q = e;
    if (e == val || (is_w && m->has_w) || (is_req && m->has_req))
        return tokens_reject(bad, tok, (size_t)(e - tok), TOKENS_R_FIELD);
    if (is_w) {
        float w;
        if (tokens_parse_weight(val, (size_t)(e - val), &w) != 0 || !(w >= 0.0f))
            return tokens_reject(bad, tok, (size_t)(e - tok), TOKENS_R_SWEIGHT);
        m->weight = w;
        m->has_w = 1;
        return 0;
    }
    m->req = keyhash_value(REQ_SEED, val, (size_t)(e - val));
    if (m->req == 0)
        m->req = 1; /* 0 means "no request id" */
    m->has_req = 1;
    return 0;
}

/*
 * Append a tsv1 line (no '\n' or '\r') as a row of b. Returns 0 (token
 * counts added to *tokens / *unknown), a reason (> 0, b unchanged), or
 * ERR_NOMEM.
 */
static int tsv1_parse(const tokens_slots_t *sl, const char *p, size_t len, batch_t *b,
                      uint64_t *tokens, uint64_t *unknown, tokens_bad_t *bad)
{
    const char *end = p + len, *q;
    uint64_t ntok = 0, nunk = 0;
    int lab[3], rc;
    line_meta_t meta = {1.0f, 0, 0, 0};

    rc = tsv1_labels(p, len, lab, &q, bad);
    if (rc != 0)
        return rc;
    if ((lab[1] || lab[2]) && !lab[0])
        return TOKENS_R_COMBO;
    if (batch_row_begin(b, lab[0], lab[1], lab[2]) != 0)
        return ERR_NOMEM;
    while (q < end) {
        const char *tok = q, *colon, *val, *last = NULL;
        uint32_t h = TOKENS_SLOT_HASH0;
        float w = 1.0f;
        int s;

        for (; q < end && *q != ':' && *q != ' '; q++)
            h = tokens_slot_hash_step(h, (unsigned char)*q);
        colon = q;
        if (q == end || *q == ' ' || q == tok)
            return malformed(b, bad, tok, end);
        val = ++q;
        if (*tok == '@' && (rc = line_field(tok, colon, &q, end, &meta, bad)) >= 0) {
            if (rc > 0) {
                batch_row_cancel(b);
                return rc;
            }
            if (q < end && ++q == end)
                return malformed(b, bad, q, end);
            continue;
        }
        for (; q < end && *q != ' '; q++)
            if (*q == ':')
                last = q;
        if (!last)
            last = q;
        else if (tokens_parse_weight(last + 1, (size_t)(q - last - 1), &w) != 0) {
            batch_row_cancel(b);
            return tokens_reject(bad, tok, (size_t)(q - tok), TOKENS_R_WEIGHT);
        }
        if (last == val)
            return malformed(b, bad, tok, end);
        s = tokens_slots_find(sl, tok, (size_t)(colon - tok), h);
        if (s < 0) {
            nunk++;
            tokens_tell_unknown(sl, tok, (size_t)(colon - tok));
        } else {
            uint64_t key = keyhash_value(sl->ms->slot[s].seed, val, (size_t)(last - val));
            ntok++;
            if (batch_row_add(b, s, key, w) != 0 ||
                tokens_tell(sl, s, val, (size_t)(last - val), key) != 0) {
                batch_row_cancel(b);
                return ERR_NOMEM;
            }
        }
        /* one space between tokens: not two, and none at the end */
        if (q < end && ++q == end)
            return malformed(b, bad, q, end);
    }
    batch_row_meta(b, meta.weight, meta.req);
    batch_row_end(b);
    *tokens += ntok;
    *unknown += nunk;
    return 0;
}

/* ---- rejected lines ------------------------------------------------------ */

/* Printable copy of the offending bytes: control bytes as \xNN, cut at 48. */
static void quote_bad(const tokens_bad_t *bad, char *out, size_t cap)
{
    size_t o = 0, i;

    out[0] = '\0';
    if (!bad->p)
        return;
    o += (size_t)snprintf(out, cap, " '");
    for (i = 0; i < bad->len && i < 48 && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)bad->p[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    snprintf(out + o, cap - o, "%s'", i < bad->len ? "..." : "");
}

/*
 * Count a rejected line of path:line; log it while the report budget
 * lasts. Under strict, fill eb and return ERR_REJECTED; else 0.
 */
static int reject(reader_t *r, int join, const char *path, uint64_t line, int reason,
                  const tokens_bad_t *bad, errbuf_t *eb)
{
    char what[256];

    if (join) {
        r->st.join_rejected++;
        r->st.join_by_reason[reason]++;
    } else {
        r->st.rejected++;
        r->st.by_reason[reason]++;
    }
    if (!r->o.strict && r->reported >= r->o.report_rejects)
        return 0;
    quote_bad(bad, what, sizeof(what));
    if (r->o.strict)
        return errbuf_set(eb, ERR_REJECTED, "%s:%llu: %s%s", path, (unsigned long long)line,
                          tokens_reason_text(reason), what);
    LOG_WARN("%s:%llu: %s%s", path, (unsigned long long)line, tokens_reason_text(reason), what);
    if (++r->reported == r->o.report_rejects)
        LOG_WARN("further rejected lines are counted, not reported (report_rejects = %d)",
                 r->o.report_rejects);
    return 0;
}

/* Line number of the line just consumed from file cur (1-based); 0 if it
 * cannot be counted. */
static uint64_t current_line(reader_t *r)
{
    if (!r->line_known) {
        uint64_t before;
        errbuf_t e;

        if (linesrc_count_lines(r->file[r->cur].path, r->line_from, &before, &e) != 0) {
            LOG_WARN("cannot number lines: %s", e.msg);
            return 0;
        }
        r->line += before;
        r->line_known = 1;
    }
    return r->line;
}

/* ---- input set ----------------------------------------------------------- */

static int push_path(reader_t *r, const char *path, errbuf_t *eb)
{
    char *copy = strdup(path);

    if (!copy)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    if (r->o.format == READER_ALICCP && aliccp_is_join_file(path)) {
        if (r->njoin == r->joincap) {
            int cap = r->joincap ? r->joincap * 2 : 4;
            char **p = realloc(r->join_path, (size_t)cap * sizeof(*p));
            if (!p) {
                free(copy);
                return errbuf_set(eb, ERR_NOMEM, "out of memory");
            }
            r->join_path = p;
            r->joincap = cap;
        }
        r->join_path[r->njoin++] = copy;
        return 0;
    }
    if (r->nfiles == r->filecap) {
        int cap = r->filecap ? r->filecap * 2 : 16;
        rfile_t *f = realloc(r->file, (size_t)cap * sizeof(*f));
        if (!f) {
            free(copy);
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        }
        r->file = f;
        r->filecap = cap;
    }
    memset(&r->file[r->nfiles], 0, sizeof(rfile_t));
    r->file[r->nfiles].path = copy;
    r->file[r->nfiles].gz = linesrc_is_gzip(path);
    r->nfiles++;
    return 0;
}

/* Files and glob patterns, in the given order; each pattern sorted. */
static int expand_paths(reader_t *r, char *const *paths, int npaths, errbuf_t *eb)
{
    for (int i = 0; i < npaths; i++) {
        glob_t g;
        int rc;

        if (!strpbrk(paths[i], "*?[")) {
            rc = push_path(r, paths[i], eb);
            if (rc != 0)
                return rc;
            continue;
        }
        rc = glob(paths[i], GLOB_ERR, NULL, &g);
        if (rc == GLOB_NOMATCH && access(paths[i], F_OK) == 0) {
            /* a file whose name merely looks like a pattern */
            globfree(&g);
            rc = push_path(r, paths[i], eb);
            if (rc != 0)
                return rc;
            continue;
        }
        if (rc == GLOB_NOMATCH) {
            globfree(&g);
            return errbuf_set(eb, ERR_IO, "%s: no file matches the pattern", paths[i]);
        }
        if (rc != 0) {
            globfree(&g);
            return errbuf_set(eb, rc == GLOB_NOSPACE ? ERR_NOMEM : ERR_IO, "%s: cannot expand: %s",
                              paths[i], rc == GLOB_NOSPACE ? "out of memory" : "read error");
        }
        for (size_t k = 0; k < g.gl_pathc && rc == 0; k++)
            rc = push_path(r, g.gl_pathv[k], eb);
        globfree(&g);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The file must be a readable regular file; its size into *size. */
static const char *file_kind(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a named pipe"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/*
 * A log must be a readable regular file: the input is split between
 * workers by byte size and resumed by seeking, neither of which a pipe or
 * a device allows (and /dev/zero never ends). An empty one is an error
 * unless allow_empty: a job reading nothing almost always has the wrong
 * path. Opened without blocking, so a FIFO with no writer cannot hang.
 */
static int probe_file(const char *path, int allow_empty, uint64_t *size, errbuf_t *eb)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0)
        return errbuf_set(eb, ERR_IO, "open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return errbuf_set(eb, ERR_IO, "stat %s: %s", path, strerror(e));
    }
    close(fd);
    if (!S_ISREG(st.st_mode))
        return errbuf_set(eb, ERR_IO,
                          "log %s is %s: give a regular file (pipes and devices "
                          "cannot be split between workers or resumed)",
                          path, file_kind(st.st_mode));
    if (st.st_size == 0 && !allow_empty)
        return errbuf_set(eb, ERR_INVAL,
                          "log %s is empty: give the right file, or --allow-empty "
                          "if an empty input is expected",
                          path);
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Decide which part of every data file this rank owns (see reader.h). */
static void plan_split(reader_t *r)
{
    uint64_t w = (uint64_t)r->o.workers, k = (uint64_t)r->o.rank;
    int ngz = 0, gzi = 0;

    for (int i = 0; i < r->nfiles; i++)
        ngz += r->file[i].gz;
    for (int i = 0; i < r->nfiles; i++) {
        rfile_t *f = &r->file[i];

        if (!f->gz) {
            /* floor(size * k / w) without overflowing size * k */
            f->split = SPLIT_BYTES;
            f->lo = f->size / w * k + f->size % w * k / w;
            f->hi = f->size / w * (k + 1) + f->size % w * (k + 1) / w;
        } else if ((uint64_t)ngz >= w) {
            f->split = SPLIT_WHOLE;
            f->owned = (uint64_t)gzi++ % w == k;
        } else {
            f->split = SPLIT_LINES;
        }
    }
}

/* ---- Ali-CCP join tables -------------------------------------------------- */

static int load_join_file(reader_t *r, const char *path, errbuf_t *eb)
{
    linesrc_t *src = NULL;
    linesrc_line_t ln;
    uint64_t lineno = 0;
    int rc;

    rc = linesrc_open(&src, path, 0, r->o.max_line, eb);
    while (rc == 0 && (rc = linesrc_next(src, &ln, eb)) == 0) {
        tokens_bad_t bad = {ln.p, ln.len};
        int reason;

        lineno++;
        if (ln.too_long) {
            rc = reject(r, 1, path, lineno, TOKENS_R_TOOLONG, &bad, eb);
            continue;
        }
        if (ln.len > 0 && ln.p[ln.len - 1] == '\r')
            ln.len--;
        if (ln.len == 0 || ln.p[0] == '#')
            continue;
        reason = aliccp_join_add(r->join, &r->slots, ln.p, ln.len, &bad);
        if (reason < 0)
            rc = errbuf_set(eb, reason, "%s:%llu: %s", path, (unsigned long long)lineno,
                            err_strerror(reason));
        else if (reason > 0)
            rc = reject(r, 1, path, lineno, reason, &bad, eb);
    }
    linesrc_destroy(&src);
    return rc == ERR_EOF ? 0 : rc;
}

static int load_join(reader_t *r, errbuf_t *eb)
{
    int rc;

    if (r->njoin == 0)
        return errbuf_set(eb, ERR_INVAL,
                          "format aliccp: no common_features file among the inputs "
                          "(pass the skeleton files and the common_features files)");
    rc = aliccp_join_new(&r->join);
    if (rc != 0)
        return errbuf_set(eb, rc, "out of memory");
    for (int i = 0; i < r->njoin; i++) {
        rc = load_join_file(r, r->join_path[i], eb);
        if (rc != 0)
            return rc;
    }
    r->st.join_rows = aliccp_join_rows(r->join);
    LOG_INFO("loaded %llu common-features rows from %d file(s)",
             (unsigned long long)r->st.join_rows, r->njoin);
    return 0;
}

/* ---- open ---------------------------------------------------------------- */

int reader_open(reader_t **out, const model_spec_t *ms, const reader_opts_t *o, char *const *paths,
                int npaths, errbuf_t *eb)
{
    reader_t *r;
    int rc;

    *out = NULL;
    if (o->format != READER_TSV1 && o->format != READER_ALICCP)
        return errbuf_set(eb, ERR_INVAL, "reader: unknown format %d", o->format);
    if (o->workers < 0 || o->rank < 0 || o->rank >= (o->workers ? o->workers : 1))
        return errbuf_set(eb, ERR_INVAL, "reader: rank %d is not in [0, %d)", o->rank, o->workers);
    if (npaths <= 0)
        return errbuf_set(eb, ERR_INVAL, "reader: no input files");
    if (ms->nslots <= 0 || ms->nslots > MODEL_MAX_SLOTS)
        return errbuf_set(eb, ERR_INVAL, "reader: model has %d slots", ms->nslots);
    r = calloc(1, sizeof(*r));
    if (!r)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    r->ms = *ms;
    tokens_slots_init(&r->slots, &r->ms);
    r->slots.seen = o->on_token;
    r->slots.seen_ctx = o->on_token_ctx;
    r->slots.unknown = o->on_unknown;
    r->slots.unknown_ctx = o->on_unknown_ctx;
    r->o = *o;
    if (r->o.workers == 0)
        r->o.workers = 1;
    if (r->o.report_rejects < 0)
        r->o.report_rejects = 0;
    r->line_known = 1;

    rc = expand_paths(r, paths, npaths, eb);
    for (int i = 0; rc == 0 && i < r->nfiles; i++)
        rc = probe_file(r->file[i].path, o->allow_empty, &r->file[i].size, eb);
    for (int i = 0; rc == 0 && i < r->njoin; i++) {
        uint64_t size;
        rc = probe_file(r->join_path[i], o->allow_empty, &size, eb);
    }
    if (rc == 0 && r->nfiles == 0)
        rc = errbuf_set(eb, ERR_INVAL, "reader: no %s among the inputs",
                        o->format == READER_ALICCP ? "skeleton file" : "data file");
    if (rc == 0 && o->format == READER_ALICCP)
        rc = load_join(r, eb);
    if (rc != 0) {
        reader_destroy(&r);
        return rc;
    }
    plan_split(r);
    *out = r;
    return 0;
}

/* ---- reading ------------------------------------------------------------- */

static void set_cursor(reader_t *r)
{
    r->cursor.file = (uint32_t)r->cur;
    r->cursor.offset = r->src ? linesrc_offset(r->src) : 0;
    r->cursor.line = r->line_known ? r->line : 0;
}

static void finish_file(reader_t *r)
{
    linesrc_destroy(&r->src);
    r->cur++;
    r->line = 0;
    r->line_from = 0;
    r->line_known = 1;
    set_cursor(r);
}

/*
 * Open this rank's part of the next data file that has one, from file cur
 * on. Returns 0 with src open, ERR_EOF when no file is left, or an error.
 */
static int open_next(reader_t *r, errbuf_t *eb)
{
    while (r->cur < r->nfiles) {
        rfile_t *f = &r->file[r->cur];
        linesrc_line_t ln;
        int rc;

        if ((f->split == SPLIT_WHOLE && !f->owned) || (f->split == SPLIT_BYTES && f->lo >= f->hi)) {
            finish_file(r);
            continue;
        }
        if (f->split != SPLIT_BYTES || f->lo == 0)
            return linesrc_open(&r->src, f->path, 0, r->o.max_line, eb);
        /* Start at the first line that starts at or after lo: drop the
         * rest of the line that holds byte lo - 1. */
        rc = linesrc_open(&r->src, f->path, f->lo - 1, r->o.max_line, eb);
        if (rc == 0)
            rc = linesrc_next(r->src, &ln, eb);
        if (rc == ERR_EOF) {
            finish_file(r);
            continue;
        }
        if (rc != 0)
            return rc;
        r->line = 0;
        r->line_from = linesrc_offset(r->src);
        r->line_known = 0;
        return 0;
    }
    return ERR_EOF;
}

/* Account for one line this rank owns and append it to b if it is good.
 * Returns 0, ERR_REJECTED (strict), or ERR_NOMEM. */
static int take_line(reader_t *r, linesrc_line_t *ln, batch_t *b, errbuf_t *eb)
{
    char *p = ln->p;
    size_t len = ln->len;
    tokens_bad_t bad = {p, len};
    int reason = TOKENS_R_TOOLONG;

    r->st.lines++;
    r->st.bytes += len + 1;
    if (!ln->too_long) {
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len == 0 || p[0] == '#') {
            r->st.skipped++;
            return 0;
        }
        bad.p = NULL;
        if (r->join)
            reason = aliccp_parse_skeleton(r->join, &r->slots, p, len, b, &r->st.tokens,
                                           &r->st.unknown_slot_tokens, &bad);
        else
            reason =
                tsv1_parse(&r->slots, p, len, b, &r->st.tokens, &r->st.unknown_slot_tokens, &bad);
        if (reason == 0) {
            r->st.accepted++;
            return 0;
        }
        if (reason < 0)
            return errbuf_set(eb, reason, "%s: %s", r->file[r->cur].path, err_strerror(reason));
    }
    return reject(r, 0, r->file[r->cur].path, current_line(r), reason, &bad, eb);
}

/* Room for n entries in row_at and carry_at; 0 or ERR_NOMEM. */
static int grow_at(reader_t *r, size_t n)
{
    reader_pos_t *a, *c;

    if (n <= r->at_cap)
        return 0;
    a = realloc(r->row_at, n * sizeof(*a));
    if (!a)
        return ERR_NOMEM;
    r->row_at = a;
    c = realloc(r->carry_at, n * sizeof(*c));
    if (!c)
        return ERR_NOMEM;
    r->carry_at = c;
    r->at_cap = n;
    return 0;
}

/*
 * Read lines until b holds `want` rows or this rank's input ends (ERR_EOF
 * is not an error here: the caller looks at b->n). r->row_at[i] gets the
 * cursor before the line of each row i appended.
 */
static int fill(reader_t *r, batch_t *b, size_t want, errbuf_t *eb)
{
    uint64_t w = (uint64_t)r->o.workers, k = (uint64_t)r->o.rank;
    int rc = grow_at(r, want);

    if (rc != 0)
        return errbuf_set(eb, rc, "out of memory");
    while (b->n < want) {
        linesrc_line_t ln;
        rfile_t *f;

        if (!r->src) {
            rc = open_next(r, eb);
            if (rc == ERR_EOF)
                break;
            if (rc != 0)
                return rc;
        }
        f = &r->file[r->cur];
        rc = linesrc_next(r->src, &ln, eb);
        if (rc == ERR_EOF || (rc == 0 && f->split == SPLIT_BYTES && ln.off >= f->hi)) {
            finish_file(r);
            continue;
        }
        if (rc != 0)
            return rc;
        r->line++;
        if (f->split != SPLIT_LINES || (r->line - 1) % w == k) {
            size_t n0 = b->n;
            reader_pos_t before = r->cursor;

            rc = take_line(r, &ln, b, eb);
            if (rc != 0)
                return rc;
            if (b->n > n0)
                r->row_at[n0] = before;
        }
        set_cursor(r);
    }
    return 0;
}

/*
 * b holds max_rows + 1 rows. Keep in b the rows up to the last request
 * boundary (see reader.h), move the others to r->carry, and set r->told to
 * the position before the first row moved: a reader seeking there reads
 * the moved rows again.
 */
static int cut_at_request(reader_t *r, batch_t *b, size_t max_rows, errbuf_t *eb)
{
    size_t n = b->n, cut = max_rows;
    uint64_t last = b->req[n - 1];

    if (last != 0 && b->req[n - 2] == last) {
        size_t first = n - 1;
        while (first > 0 && b->req[first - 1] == last)
            first--;
        if (first > 0)
            cut = first; /* else: one request longer than a batch, split */
    }
    if (r->carry.slot == NULL && batch_init(&r->carry, r->ms.nslots, max_rows + 1) != 0)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    batch_clear(&r->carry);
    if (batch_append_rows(&r->carry, b, cut, n) != 0)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    memcpy(r->carry_at, r->row_at + cut, (n - cut) * sizeof(*r->carry_at));
    r->told = r->row_at[cut];
    b->n = cut;
    for (int s = 0; s < b->nslots; s++)
        b->slot[s].nnz = b->slot[s].off[cut];
    return 0;
}

int reader_next_batch(reader_t *r, batch_t *b, size_t max_rows, errbuf_t *eb)
{
    int rc;

    if (b->nslots != r->ms.nslots)
        return errbuf_set(eb, ERR_INVAL, "reader: batch has %d slots, the model %d", b->nslots,
                          r->ms.nslots);
    if (max_rows == 0)
        return errbuf_set(eb, ERR_INVAL, "reader: batch of 0 rows");
    batch_clear(b);
    if (r->carry.n > 0) {
        /* at most max_rows: cut_at_request() keeps at least one row */
        if (batch_append_rows(b, &r->carry, 0, r->carry.n) != 0 || grow_at(r, max_rows + 1) != 0)
            return errbuf_set(eb, ERR_NOMEM, "out of memory");
        memcpy(r->row_at, r->carry_at, r->carry.n * sizeof(*r->row_at));
        batch_clear(&r->carry);
    }
    rc = fill(r, b, max_rows, eb);
    if (rc != 0)
        return rc;
    r->told = r->cursor;
    /* A request id on the last row: peek one row further. */
    if (b->n == max_rows && b->req[b->n - 1] != 0) {
        rc = fill(r, b, max_rows + 1, eb);
        if (rc != 0)
            return rc;
        if (b->n > max_rows)
            rc = cut_at_request(r, b, max_rows, eb);
        else
            r->told = r->cursor;
        if (rc != 0)
            return rc;
    }
    return b->n > 0 ? 0 : ERR_EOF;
}

void reader_tell(const reader_t *r, reader_pos_t *pos)
{
    *pos = r->told;
}

/* 1 if offset is 0 or the byte before it is '\n'. */
static int is_line_start(const char *path, uint64_t offset, errbuf_t *eb, int *rc)
{
    char c = 0;
    int fd;
    ssize_t n;

    *rc = 0;
    if (offset == 0)
        return 1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *rc = errbuf_set(eb, ERR_IO, "open %s: %s", path, strerror(errno));
        return 0;
    }
    n = pread(fd, &c, 1, (off_t)offset - 1);
    if (n < 0)
        *rc = errbuf_set(eb, ERR_IO, "read %s: %s", path, strerror(errno));
    close(fd);
    return n == 1 && c == '\n';
}

int reader_seek(reader_t *r, const reader_pos_t *pos, errbuf_t *eb)
{
    rfile_t *f;
    int rc;

    if (pos->file > (uint32_t)r->nfiles)
        return errbuf_set(eb, ERR_INVAL, "reader: position in file %u of %d", pos->file, r->nfiles);
    linesrc_destroy(&r->src);
    if (r->carry.slot)
        batch_clear(&r->carry);
    r->cur = (int)pos->file;
    r->line = 0;
    r->line_from = 0;
    r->line_known = 1;
    set_cursor(r);
    r->told = r->cursor;
    if (r->cur == r->nfiles || pos->offset == 0)
        return 0;

    f = &r->file[r->cur];
    if ((f->split == SPLIT_WHOLE && !f->owned) || (f->split == SPLIT_BYTES && pos->offset < f->lo))
        return errbuf_set(eb, ERR_INVAL, "%s: offset %llu is not in the part of worker %d of %d",
                          f->path, (unsigned long long)pos->offset, r->o.rank, r->o.workers);
    if (f->gz && pos->line == 0)
        return errbuf_set(eb, ERR_INVAL, "%s: gzip position at offset %llu without a line number",
                          f->path, (unsigned long long)pos->offset);
    if (!f->gz) {
        if (pos->offset > f->size)
            return errbuf_set(eb, ERR_INVAL, "%s: offset %llu is past the end (%llu bytes)",
                              f->path, (unsigned long long)pos->offset,
                              (unsigned long long)f->size);
        if (!is_line_start(f->path, pos->offset, eb, &rc))
            return rc ? rc
                      : errbuf_set(eb, ERR_INVAL, "%s: offset %llu is not the start of a line",
                                   f->path, (unsigned long long)pos->offset);
    }
    rc = linesrc_open(&r->src, f->path, pos->offset, r->o.max_line, eb);
    if (rc != 0)
        return rc;
    r->line = pos->line;
    r->line_from = pos->offset;
    r->line_known = pos->line > 0;
    set_cursor(r);
    r->told = r->cursor;
    return 0;
}

const reader_stats_t *reader_stats(const reader_t *r)
{
    return &r->st;
}

int reader_nfiles(const reader_t *r)
{
    return r->nfiles;
}

const char *reader_file_path(const reader_t *r, int i)
{
    return i >= 0 && i < r->nfiles ? r->file[i].path : NULL;
}

void reader_disk_progress(const reader_t *r, uint64_t *done, uint64_t *total)
{
    *done = *total = 0;
    for (int i = 0; i < r->nfiles; i++) {
        const rfile_t *f = &r->file[i];
        uint64_t lo = 0, hi = f->size, at;

        if (f->split == SPLIT_BYTES) {
            lo = f->lo;
            hi = f->hi;
        } else if (f->split == SPLIT_WHOLE && !f->owned) {
            continue;
        }
        *total += hi - lo;
        if (i < r->cur)
            *done += hi - lo;
        else if (i == r->cur && r->src) {
            at = linesrc_disk_offset(r->src);
            at = at < lo ? lo : at > hi ? hi : at;
            *done += at - lo;
        }
    }
}

void reader_log_summary(const reader_t *r)
{
    char why[1024];
    size_t o = 0;
    const reader_stats_t *st = &r->st;

    why[0] = '\0';
    for (int i = 1; i < TOKENS_NREASONS; i++)
        if (st->by_reason[i] && o < sizeof(why))
            o += (size_t)snprintf(why + o, sizeof(why) - o, "%s%s %llu", o ? ", " : "",
                                  tokens_reason_text(i), (unsigned long long)st->by_reason[i]);
    LOG_INFO("read %llu lines: %llu accepted, %llu rejected%s%s%s, %llu skipped; "
             "%llu tokens, %llu of undeclared slots",
             (unsigned long long)st->lines, (unsigned long long)st->accepted,
             (unsigned long long)st->rejected, o ? " (" : "", why, o ? ")" : "",
             (unsigned long long)st->skipped, (unsigned long long)st->tokens,
             (unsigned long long)st->unknown_slot_tokens);
    if (r->join)
        LOG_INFO("common features: %llu rows joined by md5, %llu lines rejected",
                 (unsigned long long)st->join_rows, (unsigned long long)st->join_rejected);
}

int reader_check_inputs(char *const *paths, int npaths, errbuf_t *eb)
{
    reader_t *r;
    uint64_t size;
    int rc;

    if (npaths <= 0)
        return errbuf_set(eb, ERR_INVAL, "reader: no input files");
    r = calloc(1, sizeof(*r));
    if (!r)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    rc = expand_paths(r, paths, npaths, eb);
    for (int i = 0; rc == 0 && i < r->nfiles; i++)
        rc = probe_file(r->file[i].path, 1, &size, eb) /* empty: reader_open decides */;
    reader_destroy(&r);
    return rc;
}

void reader_destroy(reader_t **rp)
{
    reader_t *r = rp ? *rp : NULL;

    if (!r)
        return;
    linesrc_destroy(&r->src);
    batch_release(&r->carry);
    free(r->row_at);
    free(r->carry_at);
    aliccp_join_destroy(&r->join);
    for (int i = 0; i < r->nfiles; i++)
        free(r->file[i].path);
    free(r->file);
    for (int i = 0; i < r->njoin; i++)
        free(r->join_path[i]);
    free(r->join_path);
    free(r);
    *rp = NULL;
}
