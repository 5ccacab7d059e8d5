/*
 * ps_metrics.c - the shard's STATS counters under Prometheus names, the
 * request latency histograms, and their HTTP server. See ps_metrics.h.
 */
#include "ps/ps_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/metrics.h"
#include "obs/metrics_http.h"
#include "proto/msg.h"

/* STATS name -> metric: X(stat, metric, KIND, help). Counters end in
 * _total, as Prometheus names them. */
#define PS_METRICS(X)                                                                           \
    X(requests, requests_total, COUNTER, "Messages received, good or bad.")                     \
    X(bytes_in, received_bytes_total, COUNTER, "Bytes of request payloads received.")           \
    X(bytes_out, sent_bytes_total, COUNTER, "Bytes of replies sent.")                           \
    X(replies_dropped, replies_dropped_total, COUNTER,                                          \
      "Replies ZeroMQ could not queue (peer gone or not reading).")                             \
    X(pull_keys, pull_keys_total, COUNTER, "Embedding keys pulled.")                            \
    X(push_keys, push_keys_total, COUNTER, "Embedding keys pushed.")                            \
    X(pushes, pushes_total, COUNTER, "Pushes applied (rows and dense).")                        \
    X(duplicate_pushes, duplicate_pushes_total, COUNTER,                                        \
      "Retried pushes answered without applying them.")                                         \
    X(replayed_pushes, replayed_pushes_total, COUNTER,                                          \
      "Pushes of batches already applied, resent by a restarted worker.")                       \
    X(lost_pushes, lost_pushes_total, COUNTER,                                                  \
      "Pushes applied before a crash and not flushed, counted since this start.")               \
    X(dense_pulls, dense_pulls_total, COUNTER, "Dense range pulls.")                            \
    X(dense_pushes, dense_pushes_total, COUNTER, "Dense gradients and assignments applied.")    \
    X(errors, errors_total, COUNTER, "Requests answered with an error.")                        \
    X(bad_messages, bad_messages_total, COUNTER,                                                \
      "Messages that did not decode, were not requests or had bad framing.")                    \
    X(bad_frames, bad_frames_total, COUNTER, "Multipart messages dropped without a reply.")     \
    X(flushes, flushes_total, COUNTER, "Flushes of dirty rows to RocksDB.")                     \
    X(rows_flushed, rows_flushed_total, COUNTER, "Rows written by flushes.")                    \
    X(checkpoints, checkpoints_total, COUNTER, "Checkpoints written.")                          \
    X(hello_policy_diffs, hello_policy_diffs_total, COUNTER,                                    \
      "Handshakes whose admission or expiry differ from this shard's.")                         \
    X(nonfinite_pushes, nonfinite_pushes_total, COUNTER,                                        \
      "Pushes and assignments refused for carrying NaN or infinity.")                           \
    X(denied, denied_total, COUNTER, "Requests refused by the client key's role or ranks.")     \
    X(shard, shard, GAUGE, "This shard's index.")                                               \
    X(shards, shards, GAUGE, "Shards in the cluster.")                                          \
    X(uptime_s, uptime_seconds, GAUGE, "Seconds since this shard started.")                     \
    X(day, day, GAUGE, "Current day number (first/last-seen, expiry).")                         \
    X(dense_initialized, dense_initialized, GAUGE, "1 once the dense range holds weights.")     \
    X(dense_step, dense_steps_total, COUNTER, "Optimizer steps of the dense range.")            \
    X(dense_floats, dense_floats, GAUGE, "Floats of the dense range this shard owns.")          \
    X(rows_resident, rows_resident, GAUGE, "Embedding rows in memory.")                         \
    X(bytes_resident, resident_bytes, GAUGE, "Bytes of embedding rows in memory.")              \
    X(bytes_payload, payload_bytes, GAUGE, "Bytes of row payload (values, optimizer state).")   \
    X(rows_dirty, rows_dirty, GAUGE, "Rows changed since the last flush.")                      \
    X(rows_created, rows_created_total, COUNTER, "Rows created.")                               \
    X(rows_loaded, rows_loaded_total, COUNTER, "Rows read back (spill file or RocksDB).")       \
    X(rows_spill_loaded, rows_spill_loaded_total, COUNTER,                                      \
      "Of the loaded rows: from the spill file.")                                               \
    X(rows_spilled, rows_spilled, GAUGE, "Rows in the spill file.")                             \
    X(bytes_spill_index, spill_index_bytes, GAUGE,                                              \
      "Of resident_bytes: the spill file's index, bit maps and buffer.")                        \
    X(spill_refused, spill_refused_total, COUNTER,                                              \
      "Evictions the spill file could not take (written to RocksDB).")                          \
    X(rows_evicted, rows_evicted_total, COUNTER, "Rows dropped from memory by the budget.")     \
    X(rows_evicted_dirty, rows_evicted_dirty_total, COUNTER,                                    \
      "Of the evicted rows: written back first.")                                               \
    X(rows_expired, rows_expired_total, COUNTER, "Rows expired for not being seen.")            \
    X(rows_total, rows, GAUGE, "Rows held, in memory and in RocksDB.")                          \
    X(rows_refused, rows_refused_total, COUNTER, "Rows not created: max_rows or max_new_rows.") \
    X(admit_pending, admit_pending_total, COUNTER, "Pulls of keys not admitted yet (zeros).")   \
    X(admit_dropped, admit_dropped_total, COUNTER, "Gradients dropped for keys not admitted.")  \
    X(curve, curve_enabled, GAUGE, "1 when the socket speaks CURVE with an allow-list.")        \
    X(zap_admitted, zap_admitted_total, COUNTER, "CURVE handshakes admitted.")                  \
    X(zap_refused, zap_refused_total, COUNTER, "CURVE handshakes refused.")                     \
    X(senders, senders, GAUGE, "Senders (workers, tools) recorded.")                            \
    X(senders_max, senders_max, GAUGE, "Most senders that may be recorded.")                    \
    X(senders_expired, senders_expired_total, COUNTER, "Idle senders expired to make room.")    \
    X(senders_refused, senders_refused_total, COUNTER, "New senders refused: the table was full.")

/* Request latency buckets, s: 50 us .. 2.5 s. */
static const double lat_bounds[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3, 5e-3, 10e-3,
                                    25e-3, 50e-3,  100e-3, 250e-3, 500e-3, 1.0,    2.5};
#define NB ((int)(sizeof(lat_bounds) / sizeof(lat_bounds[0])))

/* One exported STATS name and its series. */
typedef struct entry {
    char stat[96];
    int id;
} entry_t;

typedef struct hist {
    int id; /* -1: not a request type */
    uint64_t counts[NB + 1];
    double sum; /* s */
} hist_t;

struct ps_metrics {
    obs_reg_t *reg;
    obs_http_t *http;
    entry_t *e; /* sorted by stat */
    size_t n, cap;
    double *val; /* per entry, this snapshot */
    hist_t h[MSG_TYPE_END];
    double next; /* s, monotonic: when the next snapshot is due */
};

static int push_entry(ps_metrics_t *pm, const char *stat, int id, errbuf_t *eb)
{
    if (id < 0)
        return id;
    if (pm->n == pm->cap) {
        size_t cap = pm->cap ? 2 * pm->cap : 128;
        entry_t *e = realloc(pm->e, cap * sizeof(*e));
        if (!e)
            return errbuf_set(eb, ERR_NOMEM, "out of memory for the metrics");
        pm->e = e;
        pm->cap = cap;
    }
    snprintf(pm->e[pm->n].stat, sizeof(pm->e[pm->n].stat), "%s", stat);
    pm->e[pm->n++].id = id;
    return 0;
}

static int by_stat(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->stat, ((const entry_t *)b)->stat);
}

/* A labelled family fed by STATS names prefix<label value>. */
static int add_labelled(ps_metrics_t *pm, const char *stat, const char *metric, obs_kind_t kind,
                        const char *help, const char *label, const char *value, errbuf_t *eb)
{
    const char *labels[] = {label, value, NULL};
    int id = obs_series_add(pm->reg, kind, metric, help, labels, eb);
    return push_entry(pm, stat, id, eb);
}

static int add_series(ps_metrics_t *pm, const ps_conf_t *pc, const model_spec_t *ms, errbuf_t *eb)
{
    char stat[96], shard[24];
    const char *info[] = {"version", obs_version(), "shard", shard, NULL};
    int rc = 0, id = -1;

#define X(st, metric, kind, help)                                                                  \
    if (rc == 0)                                                                                   \
        rc = push_entry(pm, #st,                                                                   \
                        obs_series_add(pm->reg, OBS_##kind, "funnel_ps_" #metric, help, NULL, eb), \
                        eb);
    PS_METRICS(X)
#undef X
    for (int s = 0; rc == 0 && s < ms->nslots; s++) {
        snprintf(stat, sizeof(stat), "rows_resident_%s", ms->slot[s].name);
        rc = add_labelled(pm, stat, "funnel_ps_slot_rows_resident", OBS_GAUGE,
                          "Embedding rows in memory, per slot.", "slot", ms->slot[s].name, eb);
    }
    for (int t = 1; rc == 0 && t < MSG_TYPE_END; t++) {
        pm->h[t].id = -1;
        if (!msg_type_is_request(t))
            continue;
        const char *labels[] = {"type", msg_type_name(t), NULL};
        snprintf(stat, sizeof(stat), "requests_%s", msg_type_name(t));
        rc = add_labelled(pm, stat, "funnel_ps_requests_by_type_total", OBS_COUNTER,
                          "Requests received, per message type.", "type", msg_type_name(t), eb);
        if (rc == 0)
            rc = id = obs_hist_add(pm->reg, "funnel_ps_request_duration_seconds",
                                   "Time from decoding a request to queueing its reply.", labels,
                                   lat_bounds, NB, eb);
        if (rc >= 0) {
            pm->h[t].id = id;
            rc = 0;
        }
    }
#define X(name, val, text)                                                                    \
    if (rc == 0 && (val) != 0)                                                                \
        rc = add_labelled(pm, "errors_" #name, "funnel_ps_errors_by_code_total", OBS_COUNTER, \
                          "Requests answered with an error, per error code.", "code", #name, eb);
    ERR_LIST(X)
#undef X
    if (rc == 0)
        rc = add_labelled(pm, "errors_OTHER", "funnel_ps_errors_by_code_total", OBS_COUNTER,
                          "Requests answered with an error, per error code.", "code", "OTHER", eb);
    snprintf(shard, sizeof(shard), "%lld", (long long)pc->shard);
    if (rc == 0) {
        id = obs_series_add(pm->reg, OBS_GAUGE, "funnel_ps_build_info",
                            "Always 1; the labels say which build this shard runs.", info, eb);
        rc = id < 0 ? id : 0;
        if (rc == 0) { /* constant: published once, kept by every snapshot */
            obs_publish_begin(pm->reg);
            obs_set(pm->reg, id, 1);
            obs_publish_end(pm->reg);
        }
    }
    return rc;
}

int ps_metrics_open(ps_metrics_t **out, const ps_conf_t *pc, const model_spec_t *ms, errbuf_t *eb)
{
    ps_metrics_t *pm;
    int rc;

    *out = NULL;
    if (!pc->metrics_listen.s[0])
        return 0;
    pm = calloc(1, sizeof(*pm));
    if (!pm)
        return errbuf_set(eb, ERR_NOMEM, "out of memory for the metrics");
    rc = obs_reg_new(&pm->reg, eb);
    if (rc == 0)
        rc = add_series(pm, pc, ms, eb);
    if (rc == 0) {
        qsort(pm->e, pm->n, sizeof(*pm->e), by_stat);
        pm->val = calloc(pm->n, sizeof(*pm->val));
        if (!pm->val)
            rc = errbuf_set(eb, ERR_NOMEM, "out of memory for the metrics");
    }
    if (rc == 0)
        rc = obs_http_start(&pm->http, pc->metrics_listen.s, "--metrics_listen", pm->reg, eb);
    if (rc != 0) {
        ps_metrics_close(&pm);
        return errbuf_prefix(eb, rc, "shard %lld", (long long)pc->shard);
    }
    *out = pm;
    return 0;
}

int ps_metrics_due(const ps_metrics_t *pm, double now)
{
    return pm && now >= pm->next;
}

void ps_metrics_begin(ps_metrics_t *pm)
{
    if (pm)
        memset(pm->val, 0, pm->n * sizeof(*pm->val));
}

void ps_metrics_put(ps_metrics_t *pm, const char *name, uint64_t value)
{
    entry_t key;
    const entry_t *e;

    if (!pm || strlen(name) >= sizeof(key.stat))
        return;
    memcpy(key.stat, name, strlen(name) + 1);
    e = bsearch(&key, pm->e, pm->n, sizeof(*pm->e), by_stat);
    if (e)
        pm->val[e - pm->e] += (double)value; /* two codes may both read OTHER */
}

void ps_metrics_end(ps_metrics_t *pm, double now)
{
    if (!pm)
        return;
    obs_publish_begin(pm->reg);
    for (size_t i = 0; i < pm->n; i++)
        obs_set(pm->reg, pm->e[i].id, pm->val[i]);
    for (int t = 1; t < MSG_TYPE_END; t++)
        if (pm->h[t].id >= 0)
            obs_hist_set(pm->reg, pm->h[t].id, pm->h[t].counts, pm->h[t].sum);
    obs_publish_end(pm->reg);
    pm->next = now + PS_METRICS_PERIOD;
}

void ps_metrics_observe(ps_metrics_t *pm, int type, double seconds)
{
    int b = 0;

    if (!pm || type <= 0 || type >= MSG_TYPE_END || pm->h[type].id < 0)
        return;
    while (b < NB && seconds > lat_bounds[b])
        b++;
    pm->h[type].counts[b]++;
    pm->h[type].sum += seconds;
}

void ps_metrics_close(ps_metrics_t **pm)
{
    if (!pm || !*pm)
        return;
    obs_http_stop(&(*pm)->http); /* first: its thread reads the registry */
    obs_reg_destroy(&(*pm)->reg);
    free((*pm)->val);
    free((*pm)->e);
    free(*pm);
    *pm = NULL;
}
