/*
 * emb_online.c - ROWS_GET against live shards. See emb_online.h.
 */
#include "emb/emb_online.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/keyhash.h"
#include "common/optim.h"
#include "common/route.h"
#include "proto/msg.h"
#include "proto/ps_client.h"

static const char *const status_text[] = {"resident", "stored", "never seen", "not admitted yet",
                                          "expired"};

static int parse_query(const model_spec_t *ms, const char *arg, int *slot, uint64_t *key,
                       errbuf_t *eb)
{
    const char *colon = strchr(arg, ':');
    char *end;

    if (!colon)
        return errbuf_set(eb, ERR_INVAL, "get %s: online lookups need SLOT:VALUE", arg);
    *slot = model_spec_slot(ms, arg, (size_t)(colon - arg));
    if (*slot < 0)
        return errbuf_set(eb, ERR_INVAL, "get %s: slot '%.*s' is not configured", arg,
                          (int)(colon - arg), arg);
    /* SLOT:#HEX asks for a raw key of that slot */
    if (colon[1] == '#') {
        *key = strtoull(colon + 2, &end, 16);
        if (*end)
            return errbuf_set(eb, ERR_INVAL, "get %s: bad hex key", arg);
    } else {
        *key = keyhash_value(ms->slot[*slot].seed, colon + 1, strlen(colon + 1));
    }
    return 0;
}

static void print_one(const model_spec_t *ms, const char *arg, int slot, uint64_t key,
                      const msg_row_meta_t *rm, const void *rows, uint32_t width, int json,
                      FILE *out)
{
    int dim = ms->slot[slot].dim;
    int has = rm->status == MSG_ROW_RESIDENT || rm->status == MSG_ROW_STORED;
    const char *st = rm->status < 5 ? status_text[rm->status] : "?";

    if (json) {
        json_t j;
        json_init(&j, out);
        json_object_begin(&j);
        json_kv_str(&j, "query", arg);
        json_kv_str(&j, "slot", ms->slot[slot].name);
        json_key(&j, "key");
        json_hex64(&j, key);
        json_kv_str(&j, "status", st);
        json_kv_u64(&j, "seen", rm->seen);
        json_kv_u64(&j, "updates", rm->updates);
        json_kv_i64(&j, "first_day", rm->first_day);
        json_kv_i64(&j, "last_day", rm->last_day);
        json_kv_i64(&j, "expired_day", rm->expired_day);
        json_key(&j, "embedding");
        if (has) {
            json_array_begin(&j);
            for (uint32_t d = 0; d < width; d++) {
                float f;
                memcpy(&f, (const char *)rows + d * 4, 4);
                if (d == (uint32_t)dim) {
                    json_array_end(&j);
                    json_key(&j, "state");
                    json_array_begin(&j);
                }
                json_num(&j, f, 6);
            }
            if (width <= (uint32_t)dim) {
                json_array_end(&j);
                json_key(&j, "state");
                json_array_begin(&j);
            }
            json_array_end(&j);
        } else {
            json_null(&j);
            json_key(&j, "state");
            json_null(&j);
        }
        json_object_end(&j);
        json_end_line(&j);
        return;
    }
    if (!has) {
        fprintf(out, "%s (key %016" PRIx64 "): no row - %s", arg, key, st);
        if (rm->status == MSG_ROW_PENDING)
            fprintf(out, " (seen %u times)", rm->seen);
        if (rm->status == MSG_ROW_EXPIRED)
            fprintf(out, " on day %d", rm->expired_day);
        fputc('\n', out);
        return;
    }
    fprintf(out,
            "%s %016" PRIx64 " (%s)  updates %" PRIu64 "  first day %d  last day %d\n"
            "  embedding:",
            ms->slot[slot].name, key, st, rm->updates, rm->first_day, rm->last_day);
    for (uint32_t d = 0; d < width; d++) {
        float f;
        memcpy(&f, (const char *)rows + d * 4, 4);
        if (d == (uint32_t)dim)
            fprintf(out, "\n  optimizer state (%s):", optim_name(ms->emb_opt.kind));
        fprintf(out, " %.5g", f);
    }
    fputc('\n', out);
}

int emb_online_get(const model_spec_t *ms, const char *endpoints, const char *server_pub,
                   const char *self_key, char *const *args, int nargs, int json, FILE *out,
                   errbuf_t *eb)
{
    char buf[4096];
    char *eps[PS_CLIENT_MAX_SHARDS];
    ps_client_t *c = NULL;
    int n, rc, missing = 0;

    snprintf(buf, sizeof(buf), "%s", endpoints);
    n = conf_split_list(buf, ',', eps, PS_CLIENT_MAX_SHARDS);
    if (n <= 0)
        return errbuf_set(eb, ERR_INVAL, "--ps: no endpoints");
    ps_client_opts_t o = {.sender = MSG_SENDER_TOOL, .timeout_ms = 2000, .deadline_s = 10};
    rc = ps_client_opts_keys(&o, server_pub, self_key, eb);
    if (rc == 0)
        rc = ps_client_open(&c, eps, n, &o, eb);
    memset(&o.curve_self, 0, sizeof(o.curve_self));
    for (int i = 0; rc == 0 && i < nargs; i++) {
        int slot = 0;
        uint64_t key = 0;
        msg_t m, rep;
        rc = parse_query(ms, args[i], &slot, &key, eb);
        if (rc != 0)
            break;
        msg_init(&m, MSG_ROWS_GET, 0);
        m.u.rows.flags = MSG_F_STATE;
        m.u.rows.nslots = 1;
        memset(&m.u.rows.slot[0], 0, sizeof(m.u.rows.slot[0]));
        m.u.rows.slot[0].slot = (uint32_t)slot;
        m.u.rows.slot[0].nkeys = 1;
        m.u.rows.slot[0].keys = &key;
        rc = ps_client_call(c, (int)route_shard(key, (uint32_t)n), &m, &rep, eb);
        if (rc != 0)
            break;
        msg_row_meta_t rm;
        msg_row_meta_get(&rm, rep.u.rows.slot[0].meta, 0);
        missing |= !(rm.status == MSG_ROW_RESIDENT || rm.status == MSG_ROW_STORED);
        print_one(ms, args[i], slot, key, &rm, rep.u.rows.slot[0].rows, rep.u.rows.slot[0].dim,
                  json, out);
    }
    ps_client_destroy(&c);
    return rc != 0 ? rc : missing;
}
