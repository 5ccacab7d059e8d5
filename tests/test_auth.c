/*
 * test_auth.c - CURVE keys, the allow-list and the two roles, on real
 * funnel-ps processes:
 *
 *   in process   the allow-list parser (every bad line names file:line),
 *                the role rule for every request type, the loopback rule.
 *   keygen       NAME.key is 0600 even under umask 0, NAME.pub holds the
 *                same public key, nothing is ever overwritten, a key file
 *                others may read is refused.
 *   listen       --listen tcp://0.0.0.0:P (or *, or an interface name)
 *                without keys exits non-zero naming keygen; with
 *                --insecure it starts and warns.
 *   attacks      a keyed shard on tcp://127.0.0.1 spoken to by a raw CURVE
 *                client built from the codec: the attacks with a
 *                worker key (SHUTDOWN, BEGIN_DAY, CHECKPOINT, FLUSH, row
 *                ASSIGN, dense ASSIGN once initialized, PROGRESS_SET and
 *                GET of another rank, a push as another sender with seq
 *                2^64-1) each get ERR_DENIED and leave the counters, the
 *                worker's sequence and the shard's files unchanged; then
 *                an admin key does the same and succeeds. An unknown key
 *                and a plain (non-CURVE) client get no reply at all.
 *   train        a keyed shard on ipc:// serves `funnel-worker train` with
 *                a worker key end to end (rank 0 initializes the dense
 *                range) and `funnel-emb get --ps`; the same train with an
 *                unlisted key fails at once naming the key, without keys
 *                or with another rank's key it fails too; `ctl shutdown`
 *                needs the admin key.
 *
 * Every process is started with tu_spawn() and stopped in the test or the
 * suite's teardown; the scratch directory is removed in the teardown.
 */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "proto/auth.h"
#include "proto/codec.h"
#include "proto/curve.h"
#include "proto/msg.h"
#include "tests/util.h"
#include "tests/wire.h"

#define MODEL "--towers 8"
#define PS_OPTS MODEL " --flush_interval 3600"
#define SILENT_MS 1500 /* how long a refused client is listened to */
#define NK 4
#define DIM 16 /* item_id's dim under MODEL */
#define SLOT_ITEM 1

static char dir[512], psbin[600], wbin[600], genbin[600];
static pid_t pids[8];

/* ---- processes ---- */

static pid_t track(pid_t pid)
{
    for (int i = 0; pid > 0 && i < 8; i++)
        if (pids[i] == 0) {
            pids[i] = pid;
            break;
        }
    return pid;
}

static int stop(pid_t pid, int sig)
{
    for (int i = 0; i < 8; i++)
        if (pids[i] == pid)
            pids[i] = 0;
    return tu_stop(pid, sig);
}

/* The public key (Z85) of DIR/name.pub, made with funnel-ps keygen. */
static int keygen(const char *name, curve_pair_t *p)
{
    char path[700];
    errbuf_t eb;

    if (tu_sh(NULL, "%s keygen --out %s/%s > /dev/null", psbin, dir, name) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    return curve_load_pair(path, p, &eb);
}

/* ---- requests over the raw client (tests/wire.h), plain or CURVE ---- */

/* 1 if the reply is ERR_DENIED. */
static int denied(tw_conn_t *c, msg_t *m)
{
    msg_t rep;

    if (tw_call(c, m, &rep) != 0)
        return 0;
    return rep.hdr.type == MSG_ERROR && rep.u.error.code == ERR_DENIED;
}

/* 1 if the reply is an ACK (or the type's own reply). */
static int served(tw_conn_t *c, msg_t *m, int want)
{
    msg_t rep;

    if (tw_call(c, m, &rep) != 0)
        return 0;
    if (rep.hdr.type == MSG_ERROR)
        fprintf(stderr, "\n  %s refused: %.*s\n", msg_type_name(m->hdr.type),
                (int)rep.u.error.text.len, rep.u.error.text.ptr);
    return rep.hdr.type == want;
}

/* ---- requests ---- */

static uint64_t keys[NK] = {11, 22, 33, 44};
static float rows[NK * DIM];

static void rows_msg(msg_t *m, int type, uint32_t flags, uint32_t sender, uint64_t seq)
{
    msg_init(m, type, 0);
    m->hdr.sender = sender;
    m->hdr.seq = seq;
    m->u.rows.flags = flags;
    m->u.rows.nslots = 1;
    memset(&m->u.rows.slot[0], 0, sizeof(m->u.rows.slot[0]));
    m->u.rows.slot[0].slot = SLOT_ITEM;
    m->u.rows.slot[0].nkeys = NK;
    m->u.rows.slot[0].keys = keys;
    if (type == MSG_PUSH) {
        m->u.rows.slot[0].dim = DIM;
        m->u.rows.slot[0].rows = rows;
    }
}

static void cmd_msg(msg_t *m, int type, int day, const char *text)
{
    msg_init(m, type, 0);
    m->u.cmd.day = day;
    if (text) {
        m->u.cmd.text.ptr = text;
        m->u.cmd.text.len = (uint32_t)strlen(text);
    }
}

static void progress_msg(msg_t *m, int type, uint32_t rank, uint64_t offset)
{
    msg_init(m, type, 0);
    m->u.progress.rank = rank;
    m->u.progress.offset = offset;
    m->u.progress.samples = offset;
}

static void dense_msg(msg_t *m, uint32_t sender, uint64_t seq, const float *v, uint64_t n)
{
    msg_init(m, MSG_PUSH_DENSE, 0);
    m->hdr.sender = sender;
    m->hdr.seq = seq;
    m->u.dense.flags = MSG_F_ASSIGN;
    m->u.dense.offset = 0;
    m->u.dense.count = n;
    m->u.dense.values = v;
}

/* Names, sizes and modification times of the files in d (one level,
 * RocksDB keeps its files flat), sorted into buf. */
static void snapshot(const char *d, char *buf, size_t len)
{
    struct dirent **ents = NULL;
    int n = scandir(d, &ents, NULL, alphasort);
    size_t off = 0;

    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        char p[1400];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", d, ents[i]->d_name);
        if (ents[i]->d_name[0] != '.' && stat(p, &st) == 0 && off < len)
            off += (size_t)snprintf(buf + off, len - off, "%s %lld %lld.%09ld\n", ents[i]->d_name,
                                    (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                                    st.st_mtim.tv_nsec);
        free(ents[i]);
    }
    free(ents);
}

/* ---- in process: the allow-list, the rule, the loopback rule ---- */

static int allow_error(const char *text, const char *want)
{
    char path[700];
    errbuf_t eb = {{0}};
    auth_t *a = NULL;
    int rc;

    snprintf(path, sizeof(path), "%s/allow-bad", dir);
    if (tu_write(path, text) != 0)
        return 0;
    rc = auth_load(&a, path, &eb);
    auth_destroy(&a);
    if (rc != ERR_CONFIG || !strstr(eb.msg, want) || !strstr(eb.msg, "allow-bad")) {
        fprintf(stderr, "\n  %s -> %d '%s' (wanted '%s')\n", text, rc, eb.msg, want);
        return 0;
    }
    return 1;
}

static void test_allow_list(void)
{
    /* keys with '#' in them: a comment only starts a line or follows NAME */
    const char *k1 = "Yne@#w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    const char *k2 = "0ne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{h#D";
    char text[1024], path[700];
    errbuf_t eb = {{0}};
    auth_t *a = NULL;

    snprintf(path, sizeof(path), "%s/allow-good", dir);
    snprintf(text, sizeof(text),
             "# the cluster's keys\n\n  worker %s w0 0-3,7 # four workers and a spare\n"
             "admin\t%s ops\n",
             k1, k2);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, text), 0);
    CU_ASSERT_EQUAL_FATAL(auth_load(&a, path, &eb), 0);
    CU_ASSERT_EQUAL(a->n, 2);
    CU_ASSERT_EQUAL(auth_find(a, k1), 0);
    CU_ASSERT_EQUAL(auth_find(a, k2), 1);
    CU_ASSERT_EQUAL(auth_find(a, "0000000000000000000000000000000000000000"), -1);
    CU_ASSERT_PTR_EQUAL(auth_key_of(a, "1"), &a->keys[1]);
    CU_ASSERT_PTR_NULL(auth_key_of(a, "2"));
    CU_ASSERT_PTR_NULL(auth_key_of(a, "1x"));
    CU_ASSERT_PTR_NULL(auth_key_of(a, ""));
    CU_ASSERT_PTR_NULL(auth_key_of(a, NULL));
    CU_ASSERT(auth_has_rank(&a->keys[0], 0) && auth_has_rank(&a->keys[0], 3));
    CU_ASSERT(auth_has_rank(&a->keys[0], 7));
    CU_ASSERT(!auth_has_rank(&a->keys[0], 4) && !auth_has_rank(&a->keys[0], MSG_SENDER_TOOL));
    CU_ASSERT_EQUAL(a->keys[1].role, AUTH_ADMIN);
    auth_destroy(&a);
    CU_ASSERT_PTR_NULL(a);

    snprintf(text, sizeof(text), "owner %s x 0\n", k1);
    CU_ASSERT(allow_error(text, ":1: role 'owner'"));
    CU_ASSERT(allow_error("worker notakey x 0\n", ":1: 'notakey' is not a 40-character Z85"));
    snprintf(text, sizeof(text), "# c\nworker %s bad/name 0\n", k1);
    CU_ASSERT(allow_error(text, ":2: name 'bad/name'"));
    snprintf(text, sizeof(text), "worker %s w0\n", k1);
    CU_ASSERT(allow_error(text, ":1: a worker key needs RANKS"));
    snprintf(text, sizeof(text), "admin %s ops 0\n", k1);
    CU_ASSERT(allow_error(text, ":1: an admin key takes no RANKS"));
    snprintf(text, sizeof(text), "worker %s w0 3-1\n", k1);
    CU_ASSERT(allow_error(text, ":1: ranks '3-1'"));
    snprintf(text, sizeof(text), "worker %s w0 0,\n", k1);
    CU_ASSERT(allow_error(text, ":1: ranks '0,'"));
    snprintf(text, sizeof(text), "worker %s w0 70000\n", k1);
    CU_ASSERT(allow_error(text, ":1: ranks '70000'"));
    snprintf(text, sizeof(text), "worker %s w0 0\nworker %s w1 1\n", k1, k1);
    CU_ASSERT(allow_error(text, ":2: key of 'w1' is listed twice"));
    snprintf(text, sizeof(text), "worker %s w0 0\nadmin %s w0\n", k1, k2);
    CU_ASSERT(allow_error(text, ":2: name 'w0' is used twice"));
    snprintf(text, sizeof(text), "worker %s w0 0 1\n", k1);
    CU_ASSERT(allow_error(text, ":1: too many fields"));
    CU_ASSERT(allow_error("# nothing\n\n", "lists no key"));
    snprintf(path, sizeof(path), "%s/no-such-allow", dir);
    CU_ASSERT_EQUAL(auth_load(&a, path, &eb), ERR_IO);
    CU_ASSERT(strstr(eb.msg, "no-such-allow") != NULL);
}

static void test_roles(void)
{
    auth_key_t w = {.role = AUTH_WORKER, .name = "w", .lo = {2}, .hi = {3}, .nranges = 1};
    auth_key_t any = {.role = AUTH_WORKER, .name = "all", .any_rank = 1};
    auth_key_t adm = {.role = AUTH_ADMIN, .name = "ops"};
    static const int worker_ok[] = {MSG_HELLO, MSG_PULL, MSG_PULL_DENSE, MSG_ROWS_GET, MSG_STATS};
    static const int admin_only[] = {MSG_SHUTDOWN, MSG_BEGIN_DAY, MSG_CHECKPOINT,
                                     MSG_EXPORT,   MSG_FLUSH,     MSG_SCAN};
    errbuf_t eb;
    msg_t m;

    for (size_t i = 0; i < sizeof(worker_ok) / sizeof(worker_ok[0]); i++) {
        msg_init(&m, worker_ok[i], 0);
        CU_ASSERT_EQUAL(auth_allow(&w, &m, 1, &eb), 0);
    }
    for (size_t i = 0; i < sizeof(admin_only) / sizeof(admin_only[0]); i++) {
        msg_init(&m, admin_only[i], 0);
        CU_ASSERT_EQUAL(auth_allow(&w, &m, 1, &eb), ERR_DENIED);
        CU_ASSERT(strstr(eb.msg, "worker key 'w'") && strstr(eb.msg, msg_type_name(admin_only[i])));
        CU_ASSERT_EQUAL(auth_allow(&adm, &m, 1, &eb), 0);
    }
    /* pushes: only as its ranks, never assigning rows */
    msg_init(&m, MSG_PUSH, 0);
    m.hdr.sender = 3;
    CU_ASSERT_EQUAL(auth_allow(&w, &m, 1, &eb), 0);
    m.hdr.sender = 4;
    CU_ASSERT_EQUAL(auth_allow(&w, &m, 1, &eb), ERR_DENIED);
    CU_ASSERT(strstr(eb.msg, "as rank 4") != NULL);
    CU_ASSERT_EQUAL(auth_allow(&any, &m, 1, &eb), 0);
    m.hdr.sender = 2;
    m.u.rows.flags = MSG_F_ASSIGN;
    CU_ASSERT_EQUAL(auth_allow(&w, &m, 1, &eb), ERR_DENIED);
    CU_ASSERT_EQUAL(auth_allow(&any, &m, 1, &eb), ERR_DENIED);
    CU_ASSERT_EQUAL(auth_allow(&adm, &m, 1, &eb), 0);
    /* the dense range: gradients as its ranks; ASSIGN only while uninitialized */
    msg_init(&m, MSG_PUSH_DENSE, 0);
    m.hdr.sender = 2;
    CU_ASSERT_EQUAL(auth_allow(&w, &m, 1, &eb), 0);
    m.u.dense.flags = MSG_F_ASSIGN;
    CU_ASSERT_EQUAL(auth_allow(&w, &m, 0, &eb), 0);
    CU_ASSERT_EQUAL(auth_allow(&w, &m, 1, &eb), ERR_DENIED);
    CU_ASSERT_EQUAL(auth_allow(&adm, &m, 1, &eb), 0);
    m.hdr.sender = 9;
    CU_ASSERT_EQUAL(auth_allow(&w, &m, 0, &eb), ERR_DENIED);
    /* progress of its own ranks only */
    for (int t = MSG_PROGRESS_SET; t <= MSG_PROGRESS_GET; t++) {
        msg_init(&m, t, 0);
        m.u.progress.rank = 2;
        CU_ASSERT_EQUAL(auth_allow(&w, &m, 1, &eb), 0);
        m.u.progress.rank = 0;
        CU_ASSERT_EQUAL(auth_allow(&w, &m, 1, &eb), ERR_DENIED);
        CU_ASSERT_EQUAL(auth_allow(&adm, &m, 1, &eb), 0);
    }
    msg_init(&m, MSG_STATS, 0);
    CU_ASSERT_EQUAL(auth_allow(NULL, &m, 1, &eb), ERR_DENIED);
}

static void test_loopback_rule(void)
{
    static const char *const local[] = {"ipc:///tmp/x.sock",    "inproc://a",
                                        "tcp://127.0.0.1:7700", "tcp://127.1.2.3:1",
                                        "tcp://localhost:7700", "tcp://[::1]:7700"};
    static const char *const remote[] = {
        "tcp://0.0.0.0:7700",  "tcp://*:7700",        "tcp://eth0:7700",
        "tcp://lo:7700",       "tcp://10.0.0.1:7700", "tcp://127.0.0:7700",
        "tcp://127.0.0.256:1", "tcp://[::]:7700",     "tcp://127.0.0.1.example.com:1",
        "udp://127.0.0.1:1",   "tcp://127.0.0.1"};
    errbuf_t eb;

    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        CU_ASSERT(auth_endpoint_is_local(local[i]));
        CU_ASSERT_EQUAL(auth_check_listen(local[i], 0, 0, &eb), 0);
    }
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        if (auth_endpoint_is_local(remote[i]))
            fprintf(stderr, "\n  %s taken for local\n", remote[i]);
        CU_ASSERT(!auth_endpoint_is_local(remote[i]));
        CU_ASSERT_EQUAL(auth_check_listen(remote[i], 0, 0, &eb), ERR_CONFIG);
        CU_ASSERT(strstr(eb.msg, "funnel-ps keygen") && strstr(eb.msg, "--insecure"));
        CU_ASSERT_EQUAL(auth_check_listen(remote[i], 1, 0, &eb), 0);
    }
}

/* ---- keygen ---- */

static void test_keygen_files(void)
{
    char kp[700], pp[700], out[700], *before, *after;
    struct stat st;
    curve_pair_t pair, pub;
    errbuf_t eb;

    snprintf(kp, sizeof(kp), "%s/kg.key", dir);
    snprintf(pp, sizeof(pp), "%s/kg.pub", dir);
    snprintf(out, sizeof(out), "%s/kg.out", dir);
    /* umask 0 would make a plain fopen() file world-readable */
    CU_ASSERT_EQUAL_FATAL(tu_sh(out, "umask 0; %s keygen --out %s/kg", psbin, dir), 0);
    CU_ASSERT_EQUAL_FATAL(stat(kp, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
    CU_ASSERT_EQUAL_FATAL(stat(pp, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0077, 0044);
    CU_ASSERT_EQUAL_FATAL(curve_load_pair(kp, &pair, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(curve_load_public(pp, &pub, &eb), 0);
    CU_ASSERT_STRING_EQUAL(pair.pub, pub.pub);
    CU_ASSERT_EQUAL(strlen(pair.sec), 40);
    CU_ASSERT_STRING_EQUAL(pub.sec, "");
    before = tu_slurp(kp, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(before);
    CU_ASSERT(strstr(before, pair.sec) != NULL);

    /* never overwritten: the command fails and the pair is the same */
    CU_ASSERT_NOT_EQUAL(tu_sh(out, "%s keygen --out %s/kg", psbin, dir), 0);
    after = tu_slurp(kp, NULL);
    CU_ASSERT(after && strcmp(before, after) == 0);
    free(after);
    after = tu_slurp(out, NULL);
    CU_ASSERT(after && strstr(after, "never overwritten"));
    free(after);
    free(before);
    CU_ASSERT_NOT_EQUAL(tu_sh(out, "%s keygen", psbin), 0);

    /* a key file others may read is refused, naming the fix */
    CU_ASSERT_EQUAL(chmod(kp, 0640), 0);
    CU_ASSERT_EQUAL(curve_load_pair(kp, &pair, &eb), ERR_CONFIG);
    CU_ASSERT(strstr(eb.msg, "chmod 600") != NULL);
    /* a damaged key file: the public key no longer matches the secret */
    CU_ASSERT_EQUAL(chmod(kp, 0600), 0);
    CU_ASSERT_EQUAL(curve_load_pair(kp, &pair, &eb), 0);
    {
        char text[300];
        snprintf(text, sizeof(text), "public-key = %s\nsecret-key = %s\n", pub.pub,
                 "0000000000000000000000000000000000000000");
        CU_ASSERT_EQUAL(tu_write(kp, text), 0);
        CU_ASSERT_EQUAL(chmod(kp, 0600), 0);
        CU_ASSERT_EQUAL(curve_load_pair(kp, &pair, &eb), ERR_CONFIG);
        CU_ASSERT(strstr(eb.msg, "does not belong") != NULL);
        CU_ASSERT_EQUAL(tu_write(kp, "public-key = short\n"), 0);
        CU_ASSERT_EQUAL(curve_load_public(kp, &pair, &eb), ERR_CONFIG);
        CU_ASSERT(strstr(eb.msg, "kg.key:1") != NULL);
    }
}

/* ---- the listen rule on real processes ---- */

static void test_listen_rule(void)
{
    char log[700], *text;
    int port = tu_free_port();
    tw_conn_t c;

    CU_ASSERT_FATAL(port > 0);
    snprintf(log, sizeof(log), "%s/listen.log", dir);
    /* refused at start, before anything is made */
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s --listen tcp://0.0.0.0:%d --data %s/l-data %s", psbin, port, dir, MODEL), 1);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "funnel-ps keygen --out") && strstr(text, "--insecure"));
    free(text);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s --listen 'tcp://*:%d' --data %s/l-data %s", psbin, port, dir, MODEL), 1);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s --listen tcp://eth0:%d --data %s/l-data %s", psbin, port, dir, MODEL), 1);
    CU_ASSERT_EQUAL(tu_sh(NULL, "test -e %s/l-data", dir), 1);

    /* --insecure: starts, serves (on loopback too) and says so loudly */
    pid_t pid =
        track(tu_spawn(log, "exec %s --listen tcp://0.0.0.0:%d --data %s/l-data %s --insecure",
                       psbin, port, dir, MODEL));
    CU_ASSERT_FATAL(pid > 0);
    char ep[64];
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", port);
    CU_ASSERT_EQUAL_FATAL(tw_open(&c, ep, NULL, NULL), 0);
    CU_ASSERT(tw_stat(&c, "requests") >= 0);
    CU_ASSERT_EQUAL(tw_stat(&c, "curve"), 0);
    tw_close(&c);
    CU_ASSERT_EQUAL(stop(pid, SIGTERM), 0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "WARN INSECURE: listening on tcp://0.0.0.0"));
    free(text);
}

/* ---- the attacks on a keyed shard over TCP ---- */

static curve_pair_t k_shard, k_w0, k_w1, k_admin, k_rogue;

static int make_keys(void)
{
    char path[700], text[1024];

    if (keygen("shard", &k_shard) || keygen("w0", &k_w0) || keygen("w1", &k_w1) ||
        keygen("admin", &k_admin) || keygen("rogue", &k_rogue))
        return -1;
    snprintf(path, sizeof(path), "%s/allow", dir);
    snprintf(text, sizeof(text),
             "# role key name ranks\nworker %s w0 0\nworker %s w1 1\nadmin %s ops\n", k_w0.pub,
             k_w1.pub, k_admin.pub);
    return tu_write(path, text);
}

static pid_t keyed_shard(const char *ep, const char *name)
{
    char log[700];

    snprintf(log, sizeof(log), "%s/%s.log", dir, name);
    return track(
        tu_spawn(log,
                 "exec %s --listen %s --data %s/%s-data %s --curve_secret_key %s/shard.key "
                 "--curve_allow %s/allow",
                 psbin, ep, dir, name, PS_OPTS, dir, dir));
}

static void test_attacks_refused(void)
{
    char ep[64], data[700], ck[700], snap0[8192], snap1[8192];
    int port = tu_free_port();
    tw_conn_t w1, w0, adm, rogue, plain;
    msg_t m, rep;
    uint64_t dn;
    float *dv;

    CU_ASSERT_FATAL(port > 0);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/tcp-data", dir);
    snprintf(ck, sizeof(ck), "%s/checkpoints/stolen-ckpt", dir); /* name: stolen-ckpt */
    pid_t pid = keyed_shard(ep, "tcp");
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL_FATAL(tw_open(&w1, ep, k_shard.pub, &k_w1), 0);
    CU_ASSERT_EQUAL_FATAL(tw_open(&w0, ep, k_shard.pub, &k_w0), 0);
    CU_ASSERT_EQUAL(tw_stat(&w1, "curve"), 1);

    /* worker 0's normal work: rows, then the dense range's first values */
    for (int i = 0; i < NK * DIM; i++)
        rows[i] = 0.01f * (float)(i % 7);
    rows_msg(&m, MSG_PULL, 0, 0, 0);
    CU_ASSERT(served(&w0, &m, MSG_PULL_OK));
    rows_msg(&m, MSG_PUSH, 0, 0, 1);
    CU_ASSERT(served(&w0, &m, MSG_ACK));
    dn = (uint64_t)tw_stat(&w0, "dense_floats");
    CU_ASSERT_FATAL(dn > 0);
    dv = calloc(dn, sizeof(float));
    CU_ASSERT_FATAL(dv != NULL);
    dense_msg(&m, 0, 2, dv, dn);
    CU_ASSERT(served(&w0, &m, MSG_ACK)); /* rank 0 initializes an uninitialized range */
    CU_ASSERT_EQUAL(tw_stat(&w0, "dense_initialized"), 1);
    progress_msg(&m, MSG_PROGRESS_SET, 0, 1000);
    CU_ASSERT(served(&w0, &m, MSG_ACK));
    msg_init(&m, MSG_FLUSH, 0);
    {
        /* a flush by the admin so the files below are settled */
        tw_conn_t a;
        CU_ASSERT_EQUAL_FATAL(tw_open(&a, ep, k_shard.pub, &k_admin), 0);
        CU_ASSERT(served(&a, &m, MSG_ACK));
        tw_close(&a);
    }

    int64_t rows0 = tw_stat(&w1, "rows_resident"), created0 = tw_stat(&w1, "rows_created");
    int64_t pushes0 = tw_stat(&w1, "pushes"), step0 = tw_stat(&w1, "dense_step");
    int64_t flushes0 = tw_stat(&w1, "flushes");
    snapshot(data, snap0, sizeof(snap0));
    CU_ASSERT(strstr(snap0, "CURRENT") != NULL);

    /* every attack of the issue, with worker 1's key */
    cmd_msg(&m, MSG_SHUTDOWN, -1, NULL);
    CU_ASSERT(denied(&w1, &m));
    cmd_msg(&m, MSG_BEGIN_DAY, 5, NULL);
    CU_ASSERT(denied(&w1, &m));
    m.u.cmd.flags = MSG_F_EXPIRE;
    CU_ASSERT(denied(&w1, &m));
    cmd_msg(&m, MSG_CHECKPOINT, -1, "stolen-ckpt");
    CU_ASSERT(denied(&w1, &m));
    cmd_msg(&m, MSG_FLUSH, -1, NULL);
    CU_ASSERT(denied(&w1, &m));
    cmd_msg(&m, MSG_EXPORT, 0, ck);
    CU_ASSERT(denied(&w1, &m));
    rows_msg(&m, MSG_PUSH, MSG_F_ASSIGN, 1, 1);
    CU_ASSERT(denied(&w1, &m));
    dense_msg(&m, 1, 2, dv, dn);
    CU_ASSERT(denied(&w1, &m));
    progress_msg(&m, MSG_PROGRESS_SET, 0, (uint64_t)1 << 60);
    CU_ASSERT(denied(&w1, &m));
    progress_msg(&m, MSG_PROGRESS_GET, 0, 0);
    CU_ASSERT(denied(&w1, &m));
    /* the sequence hijack: worker 0's sender id with seq 2^64-1 */
    rows_msg(&m, MSG_PUSH, 0, 0, UINT64_MAX);
    CU_ASSERT(denied(&w1, &m));
    m.u.rows.flags = MSG_F_ASSIGN | MSG_F_STATE;
    CU_ASSERT(denied(&w1, &m));

    CU_ASSERT_EQUAL(tw_stat(&w1, "denied"), 12);
    CU_ASSERT_EQUAL(tw_stat(&w1, "errors_DENIED"), 12);
    CU_ASSERT_EQUAL(tw_stat(&w1, "rows_resident"), rows0);
    CU_ASSERT_EQUAL(tw_stat(&w1, "rows_created"), created0);
    CU_ASSERT_EQUAL(tw_stat(&w1, "pushes"), pushes0);
    CU_ASSERT_EQUAL(tw_stat(&w1, "dense_step"), step0);
    CU_ASSERT_EQUAL(tw_stat(&w1, "flushes"), flushes0);
    CU_ASSERT_EQUAL(tw_stat(&w1, "day"), 0);
    CU_ASSERT_EQUAL(tw_stat(&w1, "seq_0"), 1 + 1); /* the row push and the dense assign */
    CU_ASSERT_EQUAL(tw_stat(&w1, "checkpoints"), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "test -e %s", ck), 1);
    snapshot(data, snap1, sizeof(snap1));
    CU_ASSERT_STRING_EQUAL(snap0, snap1);
    /* worker 0 is unharmed: its progress and its next push count */
    progress_msg(&m, MSG_PROGRESS_GET, 0, 0);
    CU_ASSERT_EQUAL(tw_call(&w0, &m, &rep), 0);
    CU_ASSERT(rep.hdr.type == MSG_PROGRESS_OK && rep.u.progress.found &&
              rep.u.progress.offset == 1000);
    rows_msg(&m, MSG_PUSH, 0, 0, 3);
    CU_ASSERT_EQUAL(tw_call(&w0, &m, &rep), 0);
    CU_ASSERT(rep.hdr.type == MSG_ACK && !(rep.u.kv.flags & MSG_F_DUPLICATE));
    CU_ASSERT_EQUAL(tw_stat(&w1, "pushes"), pushes0 + 1);
    /* and worker 1 does its own work */
    rows_msg(&m, MSG_PUSH, 0, 1, 1);
    CU_ASSERT(served(&w1, &m, MSG_ACK));
    progress_msg(&m, MSG_PROGRESS_SET, 1, 50);
    CU_ASSERT(served(&w1, &m, MSG_ACK));

    /* an unknown key and a plain client: no reply at all */
    int64_t req0 = tw_stat(&w1, "requests");
    CU_ASSERT_EQUAL_FATAL(tw_open(&rogue, ep, k_shard.pub, &k_rogue), 0);
    cmd_msg(&m, MSG_STATS, -1, NULL);
    CU_ASSERT_NOT_EQUAL(tw_call_ms(&rogue, &m, &rep, SILENT_MS), 0);
    cmd_msg(&m, MSG_SHUTDOWN, -1, NULL);
    CU_ASSERT_NOT_EQUAL(tw_call_ms(&rogue, &m, &rep, SILENT_MS), 0);
    tw_close(&rogue);
    CU_ASSERT_EQUAL_FATAL(tw_open(&plain, ep, NULL, NULL), 0);
    CU_ASSERT_NOT_EQUAL(tw_call_ms(&plain, &m, &rep, SILENT_MS), 0);
    tw_close(&plain);
    /* a client with the right key but a wrong idea of the shard's key */
    CU_ASSERT_EQUAL_FATAL(tw_open(&rogue, ep, k_w0.pub, &k_w1), 0);
    CU_ASSERT_NOT_EQUAL(tw_call_ms(&rogue, &m, &rep, SILENT_MS), 0);
    tw_close(&rogue);
    CU_ASSERT_EQUAL(tw_stat(&w1, "requests"), req0 + 1); /* only that STATS itself */
    CU_ASSERT(tw_stat(&w1, "zap_refused") >= 1);

    /* the admin may do all of it */
    CU_ASSERT_EQUAL_FATAL(tw_open(&adm, ep, k_shard.pub, &k_admin), 0);
    cmd_msg(&m, MSG_CHECKPOINT, -1, "stolen-ckpt");
    CU_ASSERT(served(&adm, &m, MSG_ACK));
    CU_ASSERT_EQUAL(tu_sh(NULL, "test -d %s", ck), 0);
    cmd_msg(&m, MSG_BEGIN_DAY, 5, NULL);
    CU_ASSERT(served(&adm, &m, MSG_ACK));
    CU_ASSERT_EQUAL(tw_stat(&adm, "day"), 5);
    rows_msg(&m, MSG_PUSH, MSG_F_ASSIGN, MSG_SENDER_TOOL, 1);
    CU_ASSERT(served(&adm, &m, MSG_ACK));
    dense_msg(&m, MSG_SENDER_TOOL, 2, dv, dn);
    CU_ASSERT(served(&adm, &m, MSG_ACK));
    progress_msg(&m, MSG_PROGRESS_SET, 0, 7);
    CU_ASSERT(served(&adm, &m, MSG_ACK));
    cmd_msg(&m, MSG_FLUSH, -1, NULL);
    CU_ASSERT(served(&adm, &m, MSG_ACK));
    cmd_msg(&m, MSG_SHUTDOWN, -1, NULL);
    CU_ASSERT(served(&adm, &m, MSG_ACK));
    tw_close(&adm);
    tw_close(&w0);
    tw_close(&w1);
    free(dv);
    CU_ASSERT_EQUAL(stop(pid, 0), 0); /* it exits by itself, status 0 */
}

/* ---- a real train over ipc:// with keys ---- */

static void test_keyed_train(void)
{
    char ep[700], log[700], *text;
    tw_conn_t c;

    snprintf(ep, sizeof(ep), "ipc://%s/keyed.sock", dir);
    snprintf(log, sizeof(log), "%s/gen.log", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_sh(log, "%s --out %s/world --train 4000 --test 200 --seed 3", genbin, dir), 0);
    pid_t pid = keyed_shard(ep, "ipc");
    CU_ASSERT_FATAL(pid > 0);

    /* an unlisted key: nothing is served; the worker ends naming the cause */
    snprintf(log, sizeof(log), "%s/train-rogue.log", dir);
    CU_ASSERT_NOT_EQUAL(tu_sh(log,
                              "%s train --ps %s %s --deadline_s 2 --timeout_ms 300 "
                              "--curve_server_key %s/shard.pub --curve_secret_key %s/rogue.key "
                              "--metrics_file %s/m-rogue.jsonl %s/world/train.tsv",
                              wbin, ep, MODEL, dir, dir, dir, dir),
                        0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "refused this client's CURVE key"));
    free(text);
    /* no keys at all: the same (a plain client learns nothing, it times out) */
    CU_ASSERT_NOT_EQUAL(tu_sh(log,
                              "%s train --ps %s %s --deadline_s 2 --timeout_ms 300 "
                              "--metrics_file %s/m-plain.jsonl %s/world/train.tsv",
                              wbin, ep, MODEL, dir, dir),
                        0);
    /* rank 1's key cannot train as rank 0 */
    snprintf(log, sizeof(log), "%s/train-w1.log", dir);
    CU_ASSERT_NOT_EQUAL(tu_sh(log,
                              "%s train --ps %s %s --deadline_s 5 --curve_server_key %s/shard.pub "
                              "--curve_secret_key %s/w1.key --metrics_file %s/m-w1.jsonl "
                              "%s/world/train.tsv",
                              wbin, ep, MODEL, dir, dir, dir, dir),
                        0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "may not") && strstr(text, "rank 0"));
    free(text);

    /* worker 0's key: a whole train, end to end */
    snprintf(log, sizeof(log), "%s/train-w0.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s train --ps %s %s --curve_server_key %s/shard.pub "
                          "--curve_secret_key %s/w0.key --metrics_file %s/m-w0.jsonl "
                          "%s/world/train.tsv",
                          wbin, ep, MODEL, dir, dir, dir, dir),
                    0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "trained 4000 samples"));
    free(text);
    CU_ASSERT_EQUAL_FATAL(tw_open(&c, ep, k_shard.pub, &k_admin), 0);
    CU_ASSERT_EQUAL(tw_stat(&c, "dense_initialized"), 1);
    CU_ASSERT(tw_stat(&c, "rows_resident") > 1000);
    CU_ASSERT(tw_stat(&c, "seq_0") >= 8); /* 4000 / 512 batches, rows and dense */
    CU_ASSERT(tw_stat(&c, "zap_refused") >= 1);
    tw_close(&c);

    /* funnel-emb's online get reads rows with a worker key */
    snprintf(log, sizeof(log), "%s/emb.log", dir);
    char embbin[600];
    tu_bin(embbin, sizeof(embbin), "funnel-emb");
    CU_ASSERT(
        tu_sh(log,
              "%s get --ps %s %s --curve_server_key %s/shard.pub --curve_secret_key %s/w0.key "
              "item_id:1 item_id:2",
              embbin, ep, MODEL, dir, dir) <= 1);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "item_id") && !strstr(text, "no reply"));
    free(text);

    /* ctl with the admin key stops it; with a worker key it may not */
    snprintf(log, sizeof(log), "%s/ctl.log", dir);
    CU_ASSERT_NOT_EQUAL(tu_sh(log,
                              "%s ctl shutdown --ps %s --curve_server_key %s/shard.pub "
                              "--curve_secret_key %s/w0.key",
                              wbin, ep, dir, dir),
                        0);
    text = tu_slurp(log, NULL);
    CU_ASSERT(text && strstr(text, "may not send SHUTDOWN"));
    free(text);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s ctl shutdown --ps %s --curve_server_key %s/shard.pub "
                          "--curve_secret_key %s/admin.key",
                          wbin, ep, dir, dir),
                    0);
    CU_ASSERT_EQUAL(stop(pid, 0), 0);
}

static int setup(void)
{
    if (tu_mkdtemp(dir, sizeof(dir), "auth") != 0)
        return -1;
    tu_bin(psbin, sizeof(psbin), "funnel-ps");
    tu_bin(wbin, sizeof(wbin), "funnel-worker");
    tu_bin(genbin, sizeof(genbin), "funnel-gen");
    if (access(psbin, X_OK) != 0 || !curve_available())
        return -1;
    return make_keys();
}

static int teardown(void)
{
    for (int i = 0; i < 8; i++)
        if (pids[i] > 0)
            tu_stop(pids[i], SIGKILL);
    memset(pids, 0, sizeof(pids));
    tu_rmtree(dir);
    return 0;
}

int test_auth_register(void)
{
    CU_pSuite s = CU_add_suite("auth", setup, teardown);
    if (!s)
        return CU_get_error();
    CU_add_test(s, "allow-list: roles, ranks, comments; each bad line names file:line",
                test_allow_list);
    CU_add_test(s, "roles: what a worker and an admin key may send", test_roles);
    CU_add_test(s, "listen rule: only loopback and ipc without keys", test_loopback_rule);
    CU_add_test(s, "keygen: 0600 under umask 0, never overwritten, leaked or damaged key refused",
                test_keygen_files);
    CU_add_test(s, "a non-loopback --listen without keys refuses to start; --insecure warns",
                test_listen_rule);
    CU_add_test(s, "tcp: a worker key's attacks are refused with nothing changed; admin may",
                test_attacks_refused);
    CU_add_test(s, "ipc: a keyed train end to end; unlisted, plain and other-rank keys fail",
                test_keyed_train);
    return CUE_SUCCESS;
}
