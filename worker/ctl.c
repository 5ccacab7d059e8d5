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
    int rc = ps_client_opts_keys(&o, wc->curve_server_key.s, wc->curve_secret_key.s, eb);
    if (rc == 0)
        rc = ps_client_open(c, eps, n, &o, eb);
    memset(&o.curve_self, 0, sizeof(o.curve_self));
    return rc;
}

static int cmd_all(ps_client_t *c, int type, int day, uint32_t flags, errbuf_t *eb)
{
    for (int h = 0; h < ps_client_shards(c); h++) {
        msg_t m, rep;
        msg_init(&m, type, 0);
        m.u.cmd.day = day;
        m.u.cmd.flags = flags;
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

/* The "path" string of an ACK's counters into buf (empty if absent). */
static void ack_path(const msg_t *rep, char *buf, size_t len)
{
    buf[0] = '\0';
    for (uint32_t i = 0; i < rep->u.kv.n; i++) {
        const msg_kv_t *kv = &rep->u.kv.kv[i];
        if (kv->is_str && kv->name.len == 4 && !memcmp(kv->name.ptr, "path", 4))
            snprintf(buf, len, "%.*s", (int)kv->str.len, kv->str.ptr);
    }
}

/* Every shard writes ROOT/NAME/shard-I under its own checkpoint_root and
 * says where ROOT/NAME is; META goes there last, once all have answered,
 * so a directory without META is an incomplete checkpoint. */
static int checkpoint(ps_client_t *c, const worker_conf_t *wc, const ctl_args_t *a, FILE *out,
                      errbuf_t *eb)
{
    char dir[DIRS_PATH_MAX], got[DIRS_PATH_MAX];
    model_spec_t ms;
    meta_t meta;
    size_t n;
    int rc;

    if (a->out)
        return errbuf_set(eb, ERR_INVAL,
                          "checkpoint: --out is no longer accepted: each shard writes under its "
                          "own checkpoint_root ([ps]); give --name NAME");
    if (!a->name || !a->name[0])
        return errbuf_set(eb, ERR_INVAL,
                          "checkpoint: give --name NAME (letters, digits, '.', '_', '-'); the "
                          "shards write it under their checkpoint_root");
    rc = model_spec_from_conf(&ms, &wc->model, eb);
    if (rc != 0)
        return rc;
    model_t *m = model_new(&ms, 1, 0, eb);
    if (!m)
        return ERR_NOMEM;
    model_params(m, &n);
    model_destroy(&m);
    dir[0] = '\0';
    for (int h = 0; h < ps_client_shards(c); h++) {
        msg_t q, rep;
        msg_init(&q, MSG_CHECKPOINT, 0);
        q.u.cmd.day = a->day;
        q.u.cmd.text.ptr = a->name;
        q.u.cmd.text.len = (uint32_t)strlen(a->name);
        rc = ps_client_call(c, h, &q, &rep, eb);
        if (rc != 0)
            return errbuf_prefix(eb, rc, "checkpoint %s", a->name);
        ack_path(&rep, got, sizeof(got));
        if (!got[0])
            return errbuf_set(eb, ERR_PROTO,
                              "checkpoint %s: shard %d did not say where it wrote (an older "
                              "funnel-ps?)",
                              a->name, h);
        if (h == 0)
            snprintf(dir, sizeof(dir), "%s", got);
        else if (strcmp(dir, got) != 0)
            return errbuf_set(eb, ERR_CONFIG,
                              "checkpoint %s: shard %d wrote to %s but shard 0 to %s: give every "
                              "shard the same checkpoint_root (on a filesystem they share)",
                              a->name, h, got, dir);
    }
    meta_from_spec(&meta, &ms, ps_client_shards(c), a->day < 0 ? 0 : a->day, n);
    if (conf_key_given(&worker_conf_schema, &wc->given, "format") == 1) {
        /* the shards do not know the logs' format: recorded when ctl is told */
        conf_format_value(conf_find(&worker_conf_schema, "format"), wc, got, sizeof(got));
        meta_set_format(&meta, got);
    }
    rc = meta_write(dir, &meta, eb); /* fsyncs dir: the shard-N entries are durable too */
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

    /* every command first pings every shard at once, naming all that do
     * not answer within --wait; the others then work with the shards' own
     * pace, deadline_s */
    if (rc == 0)
        rc = ps_client_ping(c, eb);
    if (rc == 0 && !strcmp(a->cmd, "stats"))
        rc = stats(c, a->json, out, eb);
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
        rc = cmd_all(c, MSG_FLUSH, -1, 0, eb);
    else if (!strcmp(a->cmd, "checkpoint"))
        rc = checkpoint(c, wc, a, out, eb);
    else if (!strcmp(a->cmd, "begin-day")) {
        if (a->day < 0)
            rc = errbuf_set(eb, ERR_INVAL, "begin-day: give --day D");
        else
            rc = cmd_all(c, MSG_BEGIN_DAY, a->day, a->expire ? MSG_F_EXPIRE : 0, eb);
    } else if (!strcmp(a->cmd, "shutdown"))
        rc = cmd_all(c, MSG_SHUTDOWN, -1, 0, eb);
    else
        rc = errbuf_set(eb, ERR_INVAL,
                        "ctl: unknown command '%s' (stats, flush, checkpoint, begin-day, shutdown)",
                        a->cmd);
    ps_client_destroy(&c);
    return rc;
}
