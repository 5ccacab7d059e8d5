/*
 * test_serve.c - funnel-serve with the real programs. A fixed request set
 * (a few users, 1 to 1000 candidates each, from a test log) is scored
 * through the server and compared byte for byte with `funnel-worker
 * predict` of each request's lines on the same model, before and after a
 * delta is applied live. The done-when: three days of
 * scripts/daily-refresh.sh with funnel-serve up throughout, a client
 * scoring the request set again and again (a bounded loop), each new
 * day's bundle applied while it scores: every reply equals the old or the
 * new day's predict scores, and none fails. A damaged bundle is refused,
 * naming the file, at start and when applied (the server keeps serving).
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/serve_codec.h"
#include "tests/util.h"

#define OPTS "--towers 32,16"
#define NREQ 4
static const int req_size[NREQ] = {1, 37, 300, 1000};

static char dir[512], bin[600];

/* Request set from day d's test log: request r's lines (user_id and hour
 * the same on each) in dir/req<d>-<r>.tsv, all in order in dir/reqs<d>.tsv. */
static int make_requests(int d)
{
    return tu_sh(NULL,
                 "awk -v sizes=%d,%d,%d,%d -v dir=%s -v d=%d 'BEGIN{n=split(sizes,s,\",\"); b=1; "
                 "left=s[1]} { if (b>n) exit; u=$0; sub(/user_id:[^ ]*/, \"user_id:ureq\" b, u); "
                 "sub(/hour:[^ ]*/, \"hour:\" (b%%24), u); print u > (dir \"/req\" d \"-\" b "
                 "\".tsv\"); print u; if (--left==0) { b++; left=s[b] } }' %s/w/day%d/test.tsv "
                 "> %s/reqs%d.tsv",
                 req_size[0], req_size[1], req_size[2], req_size[3], dir, d, dir, d, dir, d);
}

static int setup(void)
{
    char gen[600];

    if (tu_mkdtemp(dir, sizeof(dir), "serve") != 0)
        return -1;
    tu_bin(gen, sizeof(gen), "funnel-gen");
    snprintf(bin, sizeof(bin), "%s", gen);
    *strrchr(bin, '/') = '\0';
    if (tu_sh(NULL, "%s --out %s/w --days 3 --train 20000 --test 1400 --seed 9 > %s/gen.log 2>&1",
              gen, dir, dir) != 0)
        return -1;
    for (int d = 1; d <= 3; d++)
        if (make_requests(d) != 0)
            return -1;
    return 0;
}

static int teardown(void)
{
    tu_stop_all();
    tu_rmtree(dir);
    return 0;
}

/* predict of each request of day d's set with `what` (--model / --bundle
 * DIR), concatenated under one header into dir/out. */
static int predict_requests(const char *what, int d, const char *out)
{
    char log[700];

    snprintf(log, sizeof(log), "%s/%s.log", dir, out);
    return tu_sh(log,
                 "set -e; for r in 1 2 3 4; do %s/funnel-worker predict %s --in %s/req%d-$r.tsv "
                 "--out %s/%s.$r; done; head -n 1 %s/%s.1 > %s/%s; for r in 1 2 3 4; do tail -n "
                 "+2 %s/%s.$r >> %s/%s; done",
                 bin, what, dir, d, dir, out, dir, out, dir, out, dir, out, dir, out);
}

/* funnel-serve score of day d's request set (grouped by user) into out. */
static int score(const char *ep, int d, const char *out)
{
    char log[700];

    snprintf(log, sizeof(log), "%s/%s.log", dir, out);
    return tu_sh(log,
                 "%s/funnel-serve score --connect %s --in %s/reqs%d.tsv --out %s/%s --group "
                 "--max_candidates 4096",
                 bin, ep, dir, d, dir, out);
}

static int contains(const char *path, const char *want)
{
    char *text = tu_slurp(path, NULL);
    int ok = text && strstr(text, want);

    if (!ok)
        fprintf(stderr, "\n%s: expected '%s' in: %s\n", path, want, text ? text : "(none)");
    free(text);
    return ok;
}

static void test_equals_predict(void)
{
    char ep[700], log[700], what[700], want[900];
    pid_t srv;

    CU_ASSERT_EQUAL_FATAL(tu_sh(NULL,
                                "%s/funnel-worker train --model %s/m1 " OPTS
                                " %s/w/day1/train.tsv > %s/t1.log 2>&1 && "
                                "%s/funnel-worker train --model %s/m2 --init_from %s/m1 " OPTS
                                " %s/w/day2/train.tsv > %s/t2.log 2>&1 && "
                                "%s/funnel-emb bundle %s/m1 --out %s/b1 > /dev/null && "
                                "%s/funnel-emb bundle %s/m2 --since %s/m1 --out %s/b2 > /dev/null",
                                bin, dir, dir, dir, bin, dir, dir, dir, dir, bin, dir, dir, bin,
                                dir, dir, dir),
                          0);
    snprintf(ep, sizeof(ep), "ipc://%s/s1.sock", dir);
    snprintf(log, sizeof(log), "%s/serve1.log", dir);
    srv =
        tu_spawn(log, "exec %s/funnel-serve --bundle %s/b1 --listen %s --threads 2", bin, dir, ep);
    CU_ASSERT_FATAL(srv > 0);
    snprintf(what, sizeof(what), "--model %s/m1", dir);
    CU_ASSERT_EQUAL(predict_requests(what, 3, "p1"), 0);
    CU_ASSERT_EQUAL(score(ep, 3, "s1"), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/p1 %s/s1", dir, dir), 0);
    /* the same on OpenBLAS's products, on both sides; a bad library named */
    snprintf(ep, sizeof(ep), "ipc://%s/s1b.sock", dir);
    snprintf(log, sizeof(log), "%s/serve1b.log", dir);
    pid_t srvb = tu_spawn(
        log, "exec %s/funnel-serve --bundle %s/b1 --listen %s --threads 2 --dense_gemm openblas",
        bin, dir, ep);
    CU_ASSERT_FATAL(srvb > 0);
    snprintf(what, sizeof(what), "--model %s/m1 --dense_gemm openblas", dir);
    CU_ASSERT_EQUAL(predict_requests(what, 3, "p1b"), 0);
    CU_ASSERT_EQUAL(score(ep, 3, "s1b"), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/p1b %s/s1b", dir, dir), 0);
    CU_ASSERT_EQUAL(tu_stop(srvb, 15), 0);
    CU_ASSERT(contains(log, "dense kernels: OpenBLAS "));
    snprintf(log, sizeof(log), "%s/serve-lib.log", dir);
    CU_ASSERT_EQUAL(
        tu_sh(log, "%s/funnel-serve --bundle %s/b1 --listen %s --dense_gemm mkl", bin, dir, ep), 2);
    CU_ASSERT(contains(log, "--dense_gemm mkl: use onednn or openblas"));
    snprintf(ep, sizeof(ep), "ipc://%s/s1.sock", dir);
    /* the next day's delta, live; then a damaged bundle, refused */
    snprintf(log, sizeof(log), "%s/apply.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-serve apply --connect %s %s/b2", bin, ep, dir), 0);
    CU_ASSERT(contains(log, "applied day 0 from"));
    CU_ASSERT(contains(log, "(delta, was day 0)"));
    snprintf(what, sizeof(what), "--model %s/m2", dir);
    CU_ASSERT_EQUAL(predict_requests(what, 3, "p2"), 0);
    CU_ASSERT_EQUAL(score(ep, 3, "s2"), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/p2 %s/s2", dir, dir), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp -s %s/p1 %s/p2", dir, dir), 1); /* the day changed scores */
    CU_ASSERT_EQUAL(tu_sh(NULL,
                          "cp -r %s/b2 %s/bad && printf x | dd of=%s/bad/dense.bin bs=1 seek=100 "
                          "conv=notrunc 2>/dev/null",
                          dir, dir, dir),
                    0);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-serve apply --connect %s %s/bad", bin, ep, dir), 1);
    snprintf(want, sizeof(want), "%s/bad/dense.bin: XXH64 ", dir);
    CU_ASSERT(contains(log, want));
    CU_ASSERT_EQUAL(score(ep, 3, "s3"), 0); /* still day 2's, unharmed */
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/p2 %s/s3", dir, dir), 0);
    /* a malformed token is an error reply naming it, not a dead server */
    CU_ASSERT_EQUAL(tu_sh(NULL, "printf '0\\t0\\t0\\tuser_id:u1 item_id\\n' > %s/badreq.tsv", dir),
                    0);
    snprintf(log, sizeof(log), "%s/badreq.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-serve score --connect %s --in %s/badreq.tsv --out "
                          "%s/badreq.out",
                          bin, ep, dir, dir),
                    1);
    CU_ASSERT(contains(log, "malformed token 'item_id'"));
    CU_ASSERT_EQUAL(score(ep, 3, "s4"), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/p2 %s/s4", dir, dir), 0);
    /* SIGTERM: a clean stop */
    CU_ASSERT_EQUAL(tu_stop(srv, 15), 0);
    /* a damaged bundle at start: refused naming the file */
    snprintf(log, sizeof(log), "%s/serve-bad.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-serve --bundle %s/bad --listen %s", bin, dir, ep), 1);
    CU_ASSERT(contains(log, want));
}

/* CURVE, as for shards: a keyed server answers a listed client, a worker
 * key may score but not apply, an admin key may apply, an unlisted key and
 * a client without keys get no answer (a timeout naming the keys); a key
 * without an allow list, and a non-local endpoint without keys, are
 * refused at start. */
static void test_curve(void)
{
    char ep[700], log[700];
    pid_t srv;

    CU_ASSERT_EQUAL_FATAL(
        tu_sh(NULL,
              "mkdir -p %s/keys && for k in srv cli adm other; do %s/funnel-ps keygen --out "
              "%s/keys/$k > /dev/null || exit 1; done && "
              "printf 'worker %%s cli *\nadmin %%s adm\n' "
              "\"$(sed -n 's/^public-key = //p' %s/keys/cli.pub)\" "
              "\"$(sed -n 's/^public-key = //p' %s/keys/adm.pub)\" > %s/keys/allow",
              dir, bin, dir, dir, dir, dir),
        0);
    snprintf(ep, sizeof(ep), "ipc://%s/curve.sock", dir);
    snprintf(log, sizeof(log), "%s/serve-curve-noallow.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-serve --bundle %s/b2 --listen %s --curve_secret_key "
                          "%s/keys/srv.key",
                          bin, dir, ep, dir),
                    1);
    CU_ASSERT(contains(log, "--curve_secret_key needs --curve_allow FILE"));
    snprintf(log, sizeof(log), "%s/serve-open.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-serve --bundle %s/b2 --listen tcp://0.0.0.0:%d", bin, dir,
                          tu_free_port()),
                    1);
    CU_ASSERT(contains(log, "reachable from other machines and funnel-serve has no keys"));
    snprintf(log, sizeof(log), "%s/serve-curve.log", dir);
    srv = tu_spawn(log,
                   "exec %s/funnel-serve --bundle %s/b2 --listen %s --curve_secret_key "
                   "%s/keys/srv.key --curve_allow %s/keys/allow",
                   bin, dir, ep, dir, dir);
    CU_ASSERT_FATAL(srv > 0);
    snprintf(log, sizeof(log), "%s/curve-score.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-serve score --connect %s --curve_server_key %s/keys/srv.pub "
                          "--curve_secret_key %s/keys/cli.key --in %s/reqs3.tsv --out %s/sc "
                          "--group --max_candidates 4096",
                          bin, ep, dir, dir, dir, dir),
                    0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "cmp %s/p2 %s/sc", dir, dir), 0);
    snprintf(log, sizeof(log), "%s/curve-nokey.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log, "%s/funnel-serve info --connect %s --timeout_ms 1000", bin, ep), 1);
    CU_ASSERT(contains(log, "with these CURVE keys?"));
    snprintf(log, sizeof(log), "%s/curve-other.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-serve info --connect %s --curve_server_key %s/keys/srv.pub "
                          "--curve_secret_key %s/keys/other.key --timeout_ms 1000",
                          bin, ep, dir, dir),
                    1);
    CU_ASSERT(contains(log, "with these CURVE keys?"));
    /* a worker key may not apply: refused, the day served unchanged */
    snprintf(log, sizeof(log), "%s/curve-apply-worker.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-serve apply --connect %s --curve_server_key %s/keys/srv.pub "
                          "--curve_secret_key %s/keys/cli.key %s/b2",
                          bin, ep, dir, dir, dir),
                    1);
    CU_ASSERT(contains(log, "key cli is a worker key: applying a bundle needs an admin key"));
    snprintf(log, sizeof(log), "%s/curve-apply-admin.log", dir);
    CU_ASSERT_EQUAL(tu_sh(log,
                          "%s/funnel-serve apply --connect %s --curve_server_key %s/keys/srv.pub "
                          "--curve_secret_key %s/keys/adm.key %s/b2",
                          bin, ep, dir, dir, dir),
                    0);
    CU_ASSERT_EQUAL(tu_stop(srv, 15), 0);
}

/* The lines of a file after its header. */
typedef struct lines {
    char *text;
    char **line;
    int n;
} lines_t;

static int load_lines(const char *path, lines_t *l)
{
    int cap = 0;

    memset(l, 0, sizeof(*l));
    l->text = tu_slurp(path, NULL);
    if (!l->text)
        return -1;
    for (char *p = strchr(l->text, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
        if (l->n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **nl = realloc(l->line, (size_t)cap * sizeof(*nl));
            if (!nl)
                return -1;
            l->line = nl;
        }
        l->line[l->n++] = p + 1;
        *p = '\0';
    }
    return 0;
}

static void free_lines(lines_t *l)
{
    free(l->text);
    free(l->line);
    memset(l, 0, sizeof(*l));
}

static void test_three_days_live(void)
{
    char ep[700], log[700], path[800], what[700];
    lines_t want[4] = {{0}};
    pid_t srv, cli;

    /* day 1, then funnel-serve up on its bundle for the rest of the test */
    snprintf(log, sizeof(log), "%s/refresh1.log", dir);
    CU_ASSERT_EQUAL_FATAL(tu_sh(log,
                                "scripts/daily-refresh.sh --bin %s --day 1 --out %s/ck1 "
                                "--worker-opt '" OPTS "' --ps-opt '" OPTS
                                "' --export-dir %s/exp %s/w/day1/train.tsv",
                                bin, dir, dir, dir),
                          0);
    snprintf(ep, sizeof(ep), "ipc://%s/live.sock", dir);
    snprintf(log, sizeof(log), "%s/serve-live.log", dir);
    srv = tu_spawn(log, "exec %s/funnel-serve --bundle %s/exp/bundle-1 --listen %s --threads 2",
                   bin, dir, ep);
    CU_ASSERT_FATAL(srv > 0);
    /* the client: scores the request set pass after pass until told to stop
     * (at most 3000 passes), each pass its own file; a failed pass is
     * recorded */
    snprintf(log, sizeof(log), "%s/client.log", dir);
    cli = tu_spawn(log,
                   "i=0; while [ ! -e %s/stop ] && [ $i -lt 3000 ]; do "
                   "%s/funnel-serve score --connect %s --in %s/reqs3.tsv --out %s/pass-$i.tsv "
                   "--group --max_candidates 4096 --day_column || echo \"pass $i failed\" >> "
                   "%s/fails; i=$((i + 1)); done; echo $i > %s/passes",
                   dir, bin, ep, dir, dir, dir, dir);
    CU_ASSERT_FATAL(cli > 0);
    for (int d = 2; d <= 3; d++) {
        snprintf(log, sizeof(log), "%s/refresh%d.log", dir, d);
        CU_ASSERT_EQUAL_FATAL(tu_sh(log,
                                    "scripts/daily-refresh.sh --bin %s --day %d --prev %s/ck%d "
                                    "--out %s/ck%d --worker-opt '" OPTS "' --ps-opt '" OPTS
                                    "' --export-dir %s/exp %s/w/day%d/train.tsv",
                                    bin, d, dir, d - 1, dir, d, dir, dir, d),
                              0);
        snprintf(log, sizeof(log), "%s/apply%d.log", dir, d);
        CU_ASSERT_EQUAL(
            tu_sh(log, "%s/funnel-serve apply --connect %s %s/exp/bundle-%d", bin, ep, dir, d), 0);
        char want_text[64];
        snprintf(want_text, sizeof(want_text), "applied day %d from", d);
        CU_ASSERT(contains(log, want_text));
        sleep(1); /* a few passes on the new day */
    }
    snprintf(path, sizeof(path), "%s/stop", dir);
    CU_ASSERT_EQUAL(tu_write(path, "stop\n"), 0);
    for (int i = 0; i < 600 && tu_sh(NULL, "test -e %s/passes", dir) != 0; i++)
        usleep(100 * 1000);
    tu_stop(cli, 15);
    CU_ASSERT_EQUAL(tu_stop(srv, 15), 0);
    CU_ASSERT_EQUAL(tu_sh(NULL, "test ! -e %s/fails", dir), 0);
    /* what predict says on each day's model, for the same requests */
    for (int d = 1; d <= 3; d++) {
        char out[32];
        snprintf(what, sizeof(what), "--model %s/ck%d", dir, d);
        snprintf(out, sizeof(out), "want%d", d);
        CU_ASSERT_EQUAL_FATAL(predict_requests(what, 3, out), 0);
        snprintf(path, sizeof(path), "%s/%s", dir, out);
        CU_ASSERT_EQUAL_FATAL(load_lines(path, &want[d]), 0);
    }
    /* every line of every pass equals its day's predict line */
    int passes = 0, lines = 0, bad = 0, seen[4] = {0};
    snprintf(path, sizeof(path), "%s/passes", dir);
    char *np = tu_slurp(path, NULL);
    passes = np ? atoi(np) : 0;
    free(np);
    CU_ASSERT(passes >= 3);
    for (int i = 0; i < passes; i++) {
        lines_t got;
        snprintf(path, sizeof(path), "%s/pass-%d.tsv", dir, i);
        CU_ASSERT_EQUAL(load_lines(path, &got), 0);
        CU_ASSERT_EQUAL(got.n, want[1].n);
        for (int k = 0; k < got.n && k < want[1].n; k++) {
            int d = atoi(got.line[k]);
            const char *tab = strchr(got.line[k], '\t');
            lines++;
            if (d < 1 || d > 3 || !tab || strcmp(tab + 1, want[d].line[k]) != 0) {
                if (bad++ < 3)
                    fprintf(stderr, "\npass %d line %d: '%s'\n", i, k, got.line[k]);
                continue;
            }
            seen[d]++;
        }
        free_lines(&got);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(lines > 0);
    /* the client scored on every day, so the deltas were applied under it */
    CU_ASSERT(seen[1] > 0);
    CU_ASSERT(seen[2] > 0);
    CU_ASSERT(seen[3] > 0);
    fprintf(stderr, "(%d passes, %d replies' lines: day1 %d, day2 %d, day3 %d) ", passes, lines,
            seen[1], seen[2], seen[3]);
    for (int d = 1; d <= 3; d++)
        free_lines(&want[d]);
}

/* The codec: round trips, and malformed input refused with a code. */
static void test_codec(void)
{
    serve_codec_t *c = serve_codec_new(4096), *d = serve_codec_new(4096);
    serve_str_t cand[3] = {{"item_id:i1", 10}, {"", 0}, {"item_id:i2 tag:a:0.5", 20}};
    serve_req_t req = {
        .type = SERVE_SCORE, .id = 77, .user = {"user_id:u9", 10}, .ncand = 3, .cand = cand};
    serve_req_t got;
    serve_rep_t rep, rgot;
    float pred[8] = {0.25f, 0.5f, 0.125f, -0.0f, 1e-30f, 0.75f, 1.0f, 0.0f};
    unsigned char bad[4200];
    const void *data;
    size_t len;
    errbuf_t eb;

    CU_ASSERT_FATAL(c && d);
    CU_ASSERT_EQUAL_FATAL(serve_codec_encode_req(c, &req, &data, &len, &eb), 0);
    CU_ASSERT_EQUAL(serve_codec_peek_type(data, len), SERVE_SCORE);
    CU_ASSERT_EQUAL_FATAL(serve_codec_decode_req(d, &got, data, len, &eb), 0);
    CU_ASSERT_EQUAL(got.type, SERVE_SCORE);
    CU_ASSERT_EQUAL(got.id, 77);
    CU_ASSERT_EQUAL(got.ncand, 3);
    CU_ASSERT(got.user.len == 10 && !memcmp(got.user.p, "user_id:u9", 10));
    CU_ASSERT(got.cand[2].len == 20 && !memcmp(got.cand[2].p, cand[2].p, 20));
    CU_ASSERT_EQUAL(got.cand[1].len, 0);
    /* every truncation is refused, never read past the end */
    memcpy(bad, data, len);
    for (size_t n = 0; n < len; n++)
        CU_ASSERT_NOT_EQUAL(serve_codec_decode_req(d, &got, bad, n, &eb), 0);
    /* another version: ERR_VERSION, the id still read */
    bad[10] = 2;
    CU_ASSERT_EQUAL(serve_codec_decode_req(d, &got, bad, len, &eb), ERR_VERSION);
    CU_ASSERT_EQUAL(got.id, 77);
    CU_ASSERT_EQUAL(serve_codec_peek_type(bad, len), 0);
    /* another magic; a candidate that is not a string (fixint 1 for its str8) */
    memcpy(bad, data, len);
    bad[3] ^= 1;
    CU_ASSERT_EQUAL(serve_codec_decode_req(d, &got, bad, len, &eb), ERR_PROTO);
    memcpy(bad, data, len);
    bad[len - 21] = 0x01;
    CU_ASSERT_NOT_EQUAL(serve_codec_decode_req(d, &got, bad, len, &eb), 0);
    /* a map declaring 2^32 pairs in 40 bytes (found by fuzz_serve_codec:
     * msgpack-c tried to allocate 256 GiB before the walk was added) */
    {
        static const unsigned char huge[] = {
            0x96, 0xa8, 0x65, 0x6e, 0x6c, 0x73, 0x65, 0x72, 0x76, 0x65, 0x00, 0x01, 0x01, 0x00,
            0x94, 0x3e, 0xcd, 0xcc, 0xcc, 0x3e, 0xdf, 0xc2, 0xf5, 0x39, 0xcd, 0x99, 0x99, 0x3e,
            0xcd, 0xcc, 0xcc, 0x3e, 0x8f, 0xc2, 0xf5, 0x3d, 0xcd, 0xcc, 0x4c, 0x3e};
        CU_ASSERT_EQUAL(serve_codec_decode_rep(d, &rgot, huge, sizeof(huge), &eb), ERR_PROTO);
        CU_ASSERT_EQUAL(serve_codec_decode_req(d, &got, huge, sizeof(huge), &eb), ERR_PROTO);
    }
    /* too big for the decoder */
    CU_ASSERT_EQUAL(serve_codec_decode_req(d, &got, bad, 4097, &eb), ERR_TOOBIG);
    /* replies: scores round-trip bit for bit; errors carry their text */
    rep = (serve_rep_t){.type = SERVE_SCORE, .id = 5, .day = 3, .npred = 4, .n = 2, .pred = pred};
    CU_ASSERT_EQUAL_FATAL(serve_codec_encode_rep(c, &rep, &data, &len, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(serve_codec_decode_rep(d, &rgot, data, len, &eb), 0);
    CU_ASSERT(rgot.day == 3 && rgot.npred == 4 && rgot.n == 2 && rgot.status == 0);
    for (int i = 0; i < 8; i++) {
        float f = serve_rep_pred(&rgot, (size_t)i);
        CU_ASSERT_EQUAL(memcmp(&f, &pred[i], 4), 0);
    }
    rep = (serve_rep_t){
        .type = SERVE_APPLY, .id = 6, .status = ERR_CORRUPT, .text = {"b/full.emb: damaged", 19}};
    CU_ASSERT_EQUAL_FATAL(serve_codec_encode_rep(c, &rep, &data, &len, &eb), 0);
    CU_ASSERT_EQUAL_FATAL(serve_codec_decode_rep(d, &rgot, data, len, &eb), 0);
    CU_ASSERT(rgot.status == ERR_CORRUPT && rgot.text.len == 19);
    /* a score reply whose blob does not match n * npred */
    rep = (serve_rep_t){.type = SERVE_SCORE, .id = 5, .day = 3, .npred = 4, .n = 2, .pred = pred};
    serve_codec_encode_rep(c, &rep, &data, &len, &eb);
    memcpy(bad, data, len);
    bad[len - 33 - 2] = 3; /* n: 2 -> 3 (the byte before the bin8 header) */
    CU_ASSERT_EQUAL(serve_codec_decode_rep(d, &rgot, bad, len, &eb), ERR_PROTO);
    /* too many candidates to encode */
    req.ncand = SERVE_MAX_CANDIDATES + 1;
    CU_ASSERT_EQUAL(serve_codec_encode_req(c, &req, &data, &len, &eb), ERR_TOOBIG);
    serve_codec_destroy(&c);
    serve_codec_destroy(&d);
    CU_ASSERT_PTR_NULL(c);
}

int test_serve_register(void)
{
    CU_pSuite s = CU_add_suite("serve", setup, teardown);

    if (!s)
        return CU_get_error();
    CU_add_test(s, "the request and reply codec; malformed input refused", test_codec);
    CU_add_test(s, "scores equal predict's, before and after a live delta", test_equals_predict);
    CU_add_test(s, "CURVE keys as for shards", test_curve);
    CU_add_test(s, "three days of refresh with funnel-serve up: every reply is a day's",
                test_three_days_live);
    return CU_get_error();
}
