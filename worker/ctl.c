/*
 * ctl.c - cluster operations over ps_client. See ctl.h.
 */
#include "worker/ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dirs.h"
#include "common/json.h"
#include "common/meta.h"
#include "model/model.h"
#include "model/modeldir.h"
#include "proto/ps_client.h"

/* Connect to the shards in wc->ps, giving up on one silent for deadline_s. */
static int connect_cluster(ps_client_t **c, const worker_conf_t *wc, int deadline_s, char *buf,
                           size_t len, errbuf_t *eb)
{
    char *eps[PS_CLIENT_MAX_SHARDS];
    int n;

    snprintf(buf, len, "%s", wc->ps.s);
    n = conf_split_list(buf, ',', eps, PS_CLIENT_MAX_SHARDS);
    if (n <= 0)
        return errbuf_set(eb, ERR_CONFIG, "give the cluster's shards with --ps EP0,EP1,...");
    ps_client_opts_t o = {
        .sender = MSG_SENDER_TOOL, .timeout_ms = (int)wc->timeout_ms, .deadline_s = deadline_s};
    return ps_client_open(c, eps, n, &o, eb);
}

static int cmd_all(ps_client_t *c, int type, int day, uint32_t flags, const char *text,
                   errbuf_t *eb)
{
    for (int h = 0; h < ps_client_shards(c); h++) {
        msg_t m, rep;
        char path[DIRS_PATH_MAX];
        msg_init(&m, type, 0);
        m.u.cmd.day = day;
        m.u.cmd.flags = flags;
        if (text) {
            int rc = dirs_path(path, sizeof(path), eb, "%s/shard-%d", text, h);
            if (rc != 0)
                return rc;
            m.u.cmd.text.ptr = path;
            m.u.cmd.text.len = (uint32_t)strlen(path);
        }
        int rc = ps_client_call(c, h, &m, &rep, eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Every shard's counters, as a table or JSON, to out (NULL: only check that
 * every shard answers). */
static int stats(ps_client_t *c, int json, FILE *out, errbuf_t *eb)
{
    json_t j;

    if (!out)
        json = 0;
    json_init(&j, out);
    if (json)
        json_array_begin(&j);
    for (int h = 0; h < ps_client_shards(c); h++) {
        msg_t m, rep;
        msg_init(&m, MSG_STATS, 0);
        int rc = ps_client_call(c, h, &m, &rep, eb);
        if (rc != 0)
            return rc;
        if (!out)
            continue;
        if (json) {
            json_object_begin(&j);
            json_kv_str(&j, "endpoint", ps_client_endpoint(c, h));
        } else {
            fprintf(out, "shard %d (%s)\n", h, ps_client_endpoint(c, h));
        }
        for (uint32_t i = 0; i < rep.u.kv.n; i++) {
            const msg_kv_t *kv = &rep.u.kv.kv[i];
            if (json) {
                json_keyn(&j, kv->name.ptr, kv->name.len);
                json_u64(&j, kv->u64);
            } else {
                fprintf(out, "  %-28.*s %llu\n", (int)kv->name.len, kv->name.ptr,
                        (unsigned long long)kv->u64);
            }
        }
        if (json)
            json_object_end(&j);
    }
    if (json) {
        json_array_end(&j);
        json_end_line(&j);
    }
    return 0;
}

static int checkpoint(ps_client_t *c, const worker_conf_t *wc, const ctl_args_t *a, FILE *out,
                      errbuf_t *eb)
{
    char cwd[DIRS_PATH_MAX], dir[DIRS_PATH_MAX], tmp[DIRS_PATH_MAX];
    model_spec_t ms;
    meta_t meta;
    size_t n;
    int rc;

    if (!a->out)
        return errbuf_set(eb, ERR_INVAL, "checkpoint: give --out DIR");
    rc = model_spec_from_conf(&ms, &wc->model, eb);
    if (rc != 0)
        return rc;
    model_t *m = model_new(&ms, 1, 0, eb);
    if (!m)
        return ERR_NOMEM;
    model_params(m, &n);
    model_destroy(&m);
    /* shards write where they are: give them an absolute path */
    if (a->out[0] == '/')
        rc = dirs_path(dir, sizeof(dir), eb, "%s", a->out);
    else if (!getcwd(cwd, sizeof(cwd)))
        rc = errbuf_set(eb, ERR_IO, "cannot resolve %s: %s", a->out, strerror(errno));
    else
        rc = dirs_path(dir, sizeof(dir), eb, "%s/%s", cwd, a->out);
    if (rc == 0)
        rc = dirs_path(tmp, sizeof(tmp), eb, "%s.tmp", dir);
    if (rc != 0)
        return rc;
    rc = dirs_remove_tree(tmp, eb);
    if (rc == 0)
        rc = dirs_make(tmp, eb); /* and --out's parents */
    if (rc == 0)
        rc = cmd_all(c, MSG_CHECKPOINT, a->day, 0, tmp, eb);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "checkpoint %s", dir);
    meta_from_spec(&meta, &ms, ps_client_shards(c), a->day < 0 ? 0 : a->day, n);
    rc = meta_write(tmp, &meta, eb); /* fsyncs tmp: the shard-N entries are durable too */
    if (rc != 0)
        return rc;
    rc = modeldir_install(tmp, dir, eb);
    if (rc != 0)
        return rc;
    fprintf(out, "checkpoint of %d shard%s written to %s (day %d)\n", ps_client_shards(c),
            ps_client_shards(c) > 1 ? "s" : "", dir, meta.day);
    return 0;
}

int ctl_run(const worker_conf_t *wc, const ctl_args_t *a, FILE *out, errbuf_t *eb)
{
    ps_client_t *c = NULL;
    char buf[CONF_STR_MAX];
    int wait = a->wait_s > 0 ? a->wait_s : CTL_WAIT_S;
    int rc = connect_cluster(&c, wc, wait, buf, sizeof(buf), eb);

    /* every command first finds every shard answering within --wait (stats
     * is that); the others then work with the shards' own pace, deadline_s */
    if (rc == 0)
        rc = stats(c, a->json, strcmp(a->cmd, "stats") ? NULL : out, eb);
    if (rc == ERR_TIMEOUT)
        rc = errbuf_prefix(eb, rc, "no answer within --wait %d s (give --wait S to wait longer)",
                           wait);
    if (rc != 0 || !strcmp(a->cmd, "stats")) {
        ps_client_destroy(&c);
        return rc;
    }
    ps_client_destroy(&c);
    rc = connect_cluster(&c, wc, (int)wc->deadline_s, buf, sizeof(buf), eb);
    if (rc != 0)
        return rc;
    if (!strcmp(a->cmd, "flush"))
        rc = cmd_all(c, MSG_FLUSH, -1, 0, NULL, eb);
    else if (!strcmp(a->cmd, "checkpoint"))
        rc = checkpoint(c, wc, a, out, eb);
    else if (!strcmp(a->cmd, "begin-day")) {
        if (a->day < 0)
            rc = errbuf_set(eb, ERR_INVAL, "begin-day: give --day D");
        else
            rc = cmd_all(c, MSG_BEGIN_DAY, a->day, a->expire ? MSG_F_EXPIRE : 0, NULL, eb);
    } else if (!strcmp(a->cmd, "shutdown"))
        rc = cmd_all(c, MSG_SHUTDOWN, -1, 0, NULL, eb);
    else
        rc = errbuf_set(eb, ERR_INVAL,
                        "ctl: unknown command '%s' (stats, flush, checkpoint, begin-day, shutdown)",
                        a->cmd);
    ps_client_destroy(&c);
    return rc;
}
