/*
 * shard_meta.c - a shard's own records in its store, and its start from a
 * checkpoint. See shard_meta.h.
 */
#include "ps/shard_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/dirs.h"
#include "common/log.h"
#include "common/meta.h"
#include "table/ckpt_read.h"
#include "table/emb_table.h"

static const char KEY_DENSE[] = CKPT_READ_DENSE_KEY;
static const char KEY_SEQ[] = "m:seq";
static const char KEY_PROG[] = "m:progress";
static const char KEY_DAY[] = "m:day";

#define META_VERSION 1 /* of m:day */
#define LIST_VERSION 2 /* of m:seq and m:progress; version 1 is still read */
#define META_HEADER 8
#define SEQ_REC 24
#define PROG_REC 48
#define SEQ_REC_V1 16
#define PROG_REC_V1 40

static unsigned char *put32(unsigned char *p, uint32_t v)
{
    bytes_put_le32(p, v);
    return p + 4;
}

static unsigned char *put64(unsigned char *p, uint64_t v)
{
    bytes_put_le64(p, v);
    return p + 8;
}

void shard_meta_init(shard_meta_t *m, long long shard, const char *dir, int day)
{
    memset(m, 0, sizeof(*m));
    m->shard = shard;
    m->dir = dir;
    m->day = day;
    m->max_senders = SHARD_META_MAX_SENDERS;
    m->sender_idle_s = SHARD_META_IDLE_S;
}

void shard_meta_set_limits(shard_meta_t *m, size_t max_senders, uint64_t sender_idle_s)
{
    m->max_senders = max_senders;
    m->sender_idle_s = sender_idle_s;
}

void shard_meta_release(shard_meta_t *m)
{
    free(m->buf);
    free(m->partial);
    free(m->prog);
    free(m->senders);
    m->buf = NULL;
    m->partial = NULL;
    m->prog = NULL;
    m->senders = NULL;
    m->buf_cap = m->nprog = m->prog_cap = m->nsenders = 0;
}

/* Encode the sender and progress records into m->buf: seq at offset 0
 * (*seq_len bytes), progress right after (*prog_len). */
static int encode_lists(shard_meta_t *m, size_t *seq_len, size_t *prog_len)
{
    size_t sl = META_HEADER + m->nsenders * SEQ_REC, pl = META_HEADER + m->nprog * PROG_REC;
    unsigned char *p;

    if (sl + pl > m->buf_cap) {
        size_t cap = m->buf_cap ? m->buf_cap : 64;
        while (cap < sl + pl)
            cap *= 2;
        p = realloc(m->buf, cap);
        if (!p)
            return ERR_NOMEM;
        m->buf = p;
        m->buf_cap = cap;
    }
    p = m->buf;
    memset(p, 0, sl + pl);
    p[0] = LIST_VERSION;
    p = put32(p + 4, (uint32_t)m->nsenders);
    for (size_t i = 0; i < m->nsenders; i++) {
        p = put32(p, m->senders[i].id);
        p = put64(p + 4, m->senders[i].last_seq);
        p = put64(p, m->senders[i].active);
    }
    p[0] = LIST_VERSION;
    p = put32(p + 4, (uint32_t)m->nprog);
    for (size_t i = 0; i < m->nprog; i++) {
        const msg_progress_t *q = &m->prog[i];
        p = put32(p, q->rank);
        p = put32(p, q->epoch);
        p = put32(p, q->file);
        p = put32(p, q->found);
        p = put64(p, q->offset);
        p = put64(p, q->line);
        p = put64(p, q->samples);
        p = put64(p, m->partial[i]);
    }
    *seq_len = sl;
    *prog_len = pl;
    return 0;
}

int shard_meta_save(shard_meta_t *m, store_t *st, dense_shard_t *dense, errbuf_t *eb)
{
    const void *drec;
    size_t dl, sl, pl;
    int rc = dense_shard_encode(dense, &drec, &dl, eb);

    if (rc != 0)
        return rc;
    if (encode_lists(m, &sl, &pl) != 0)
        return errbuf_set(eb, ERR_NOMEM, "shard %lld: out of memory for its metadata", m->shard);
    unsigned char day[8] = {META_VERSION};
    put32(day + 4, (uint32_t)m->day);
    store_op_t ops[4] = {
        {KEY_DENSE, sizeof(KEY_DENSE) - 1, drec, dl},
        {KEY_SEQ, sizeof(KEY_SEQ) - 1, m->buf, sl},
        {KEY_PROG, sizeof(KEY_PROG) - 1, m->buf + sl, pl},
        {KEY_DAY, sizeof(KEY_DAY) - 1, day, sizeof(day)},
    };
    return store_write(st, ops, 4, 1, eb);
}

/* Check a list record's header; *n gets its entry count, *rec the bytes
 * of one entry (rec2 for the current version, rec1 for version 1). */
static int list_header(const unsigned char *v, size_t vl, size_t rec2, size_t rec1,
                       const char *what, const char *where, uint32_t *n, size_t *rec, errbuf_t *eb)
{
    if (vl < META_HEADER || (v[0] != LIST_VERSION && v[0] != 1))
        return errbuf_set(eb, ERR_CORRUPT, "%s: %s record: %zu bytes, version %d (expected %d)",
                          where, what, vl, vl ? v[0] : -1, LIST_VERSION);
    *rec = v[0] == LIST_VERSION ? rec2 : rec1;
    *n = bytes_get_le32(v + 4);
    if (vl != META_HEADER + (size_t)*n * *rec)
        return errbuf_set(eb, ERR_CORRUPT, "%s: %s record of %zu bytes for %u entries", where, what,
                          vl, *n);
    return 0;
}

static int decode_senders(shard_meta_t *m, const unsigned char *v, size_t vl, errbuf_t *eb)
{
    uint64_t now = clock_unix_s();
    uint32_t n;
    size_t rec;
    int rc = list_header(v, vl, SEQ_REC, SEQ_REC_V1, "push sequence", m->dir, &n, &rec, eb);

    if (rc != 0)
        return rc;
    free(m->senders);
    m->senders = calloc((size_t)n + 1, sizeof(*m->senders));
    if (!m->senders)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p = v + META_HEADER + (size_t)i * rec;
        m->senders[i] = (shard_sender_t){bytes_get_le32(p), bytes_get_le64(p + 8), 0,
                                         rec == SEQ_REC ? bytes_get_le64(p + 16) : now};
    }
    m->nsenders = n;
    if (n > m->max_senders)
        LOG_WARN("%s holds %u senders, more than max_senders %zu: new senders are refused "
                 "until some have been idle for sender_idle_s %llu s",
                 m->dir, n, m->max_senders, (unsigned long long)m->sender_idle_s);
    return 0;
}

static int decode_progress(shard_meta_t *m, const unsigned char *v, size_t vl, errbuf_t *eb)
{
    uint32_t n;
    size_t rec;
    int rc = list_header(v, vl, PROG_REC, PROG_REC_V1, "worker progress", m->dir, &n, &rec, eb);

    if (rc != 0)
        return rc;
    free(m->prog);
    free(m->partial);
    m->prog = calloc((size_t)n + 1, sizeof(*m->prog));
    m->partial = calloc((size_t)n + 1, sizeof(*m->partial));
    m->prog_cap = (size_t)n + 1;
    if (!m->prog || !m->partial)
        return errbuf_set(eb, ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p = v + META_HEADER + (size_t)i * rec;
        /* version 1 recorded complete positions only; version 2 says */
        uint32_t found = rec == PROG_REC ? bytes_get_le32(p + 12) : 1;
        if (found > 1)
            return errbuf_set(eb, ERR_CORRUPT, "%s: worker progress record: entry %u found %u",
                              m->dir, i, found);
        m->partial[i] = rec == PROG_REC ? bytes_get_le64(p + 40) : 0;
        m->prog[i] = (msg_progress_t){bytes_get_le32(p),      found,
                                      bytes_get_le32(p + 4),  bytes_get_le32(p + 8),
                                      bytes_get_le64(p + 16), bytes_get_le64(p + 24),
                                      bytes_get_le64(p + 32)};
    }
    m->nprog = n;
    return 0;
}

/* The day record; the later of it and m->day becomes the current day. */
static int decode_day(shard_meta_t *m, const unsigned char *v, size_t vl, errbuf_t *eb)
{
    int32_t d = vl == 8 && v[0] == META_VERSION ? (int32_t)bytes_get_le32(v + 4) : -1;

    if (d < 0 || d > EMB_DAY_MAX)
        return errbuf_set(eb, ERR_CORRUPT, "%s: day record: %zu bytes, version %d", m->dir, vl,
                          vl ? v[0] : -1);
    if (d > m->day) { /* a BEGIN_DAY the command line does not know of */
        LOG_INFO("%s was left on day %d (BEGIN_DAY): continuing on day %d, not %d", m->dir, d, d,
                 m->day);
        m->day = d;
    }
    return 0;
}

/* Read one record; *v NULL if absent. */
static int get_record(store_t *st, const char *key, void **v, size_t *vl, errbuf_t *eb)
{
    int rc = store_get(st, key, strlen(key), v, vl, eb);

    if (rc == ERR_NOTFOUND) {
        *v = NULL;
        return 0;
    }
    return rc;
}

int shard_meta_load(shard_meta_t *m, store_t *st, dense_shard_t *dense, errbuf_t *eb)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = get_record(st, KEY_DENSE, &v, &vl, eb);

    if (rc == 0 && v)
        rc = dense_shard_decode(dense, v, vl, m->dir, eb);
    free(v);
    v = NULL;
    if (rc == 0)
        rc = get_record(st, KEY_SEQ, &v, &vl, eb);
    if (rc == 0 && v)
        rc = decode_senders(m, v, vl, eb);
    free(v);
    v = NULL;
    if (rc == 0)
        rc = get_record(st, KEY_PROG, &v, &vl, eb);
    if (rc == 0 && v)
        rc = decode_progress(m, v, vl, eb);
    free(v);
    v = NULL;
    if (rc == 0)
        rc = get_record(st, KEY_DAY, &v, &vl, eb);
    if (rc == 0 && v)
        rc = decode_day(m, v, vl, eb);
    free(v);
    return rc;
}

shard_sender_t *shard_meta_sender(shard_meta_t *m, uint32_t id)
{
    for (size_t i = 0; i < m->nsenders; i++)
        if (m->senders[i].id == id)
            return &m->senders[i];
    shard_sender_t *n = realloc(m->senders, (m->nsenders + 1) * sizeof(*n));
    if (!n)
        return NULL;
    m->senders = n;
    n[m->nsenders] = (shard_sender_t){id, 0, 0, 0};
    return &n[m->nsenders++];
}

/* Drop sender i and the position of its id (expiry). */
static void sender_remove(shard_meta_t *m, size_t i)
{
    uint32_t id = m->senders[i].id;

    memmove(&m->senders[i], &m->senders[i + 1], (m->nsenders - i - 1) * sizeof(*m->senders));
    m->nsenders--;
    for (size_t j = 0; j < m->nprog; j++)
        if (m->prog[j].rank == id) {
            memmove(&m->prog[j], &m->prog[j + 1], (m->nprog - j - 1) * sizeof(*m->prog));
            memmove(&m->partial[j], &m->partial[j + 1], (m->nprog - j - 1) * sizeof(*m->partial));
            m->nprog--;
            break;
        }
}

int shard_meta_sender_admit(shard_meta_t *m, uint32_t id, uint64_t now, shard_sender_t **out,
                            errbuf_t *eb)
{
    size_t idle = SIZE_MAX;

    *out = NULL;
    for (size_t i = 0; i < m->nsenders; i++)
        if (m->senders[i].id == id) {
            m->senders[i].active = now;
            *out = &m->senders[i];
            return 0;
        }
    if (m->nsenders >= m->max_senders) {
        for (size_t i = 0; i < m->nsenders; i++)
            if (m->senders[i].active + m->sender_idle_s <= now &&
                (idle == SIZE_MAX || m->senders[i].active < m->senders[idle].active))
                idle = i;
        if (idle == SIZE_MAX) {
            m->senders_refused++;
            return errbuf_set(eb, ERR_BUSY,
                              "shard %lld: sender table full (%zu senders, none idle for "
                              "sender_idle_s %llu s): sender %u refused; raise [ps] max_senders",
                              m->shard, m->nsenders, (unsigned long long)m->sender_idle_s, id);
        }
        LOG_DEBUG("sender %u expired (idle %llu s) to make room for sender %u", m->senders[idle].id,
                  (unsigned long long)(now - m->senders[idle].active), id);
        sender_remove(m, idle);
        m->senders_expired++;
    }
    shard_sender_t *n = shard_meta_sender(m, id);
    if (!n)
        return errbuf_set(eb, ERR_NOMEM, "out of memory for sender %u", id);
    n->active = now;
    *out = n;
    return 0;
}

/* Index of rank's position entry, added (not found, partial 0) if absent.
 * Returns the index, ERR_BUSY beyond max_senders, or ERR_NOMEM. */
static long prog_entry(shard_meta_t *m, uint32_t rank)
{
    for (size_t i = 0; i < m->nprog; i++)
        if (m->prog[i].rank == rank)
            return (long)i;
    if (m->nprog >= m->max_senders)
        return ERR_BUSY;
    if (m->nprog == m->prog_cap) {
        size_t cap = m->prog_cap ? m->prog_cap * 2 : 8;
        msg_progress_t *p = realloc(m->prog, cap * sizeof(*p));
        if (!p)
            return ERR_NOMEM;
        m->prog = p;
        uint64_t *q = realloc(m->partial, cap * sizeof(*q));
        if (!q)
            return ERR_NOMEM;
        m->partial = q;
        m->prog_cap = cap;
    }
    memset(&m->prog[m->nprog], 0, sizeof(*m->prog));
    m->prog[m->nprog].rank = rank;
    m->partial[m->nprog] = 0;
    return (long)m->nprog++;
}

int shard_meta_batch_check(shard_meta_t *m, uint32_t id, const msg_pos_t *pos)
{
    long i = prog_entry(m, id);
    uint64_t mark;
    uint32_t mark_last;

    if (i < 0)
        return (int)i;
    /* what was applied last: a batch in part, else the last complete one */
    mark = m->partial[i] ? m->partial[i] : m->prog[i].samples;
    mark_last = m->partial[i] ? 0 : 1;
    if (pos->samples < mark || (pos->samples == mark && pos->last <= mark_last))
        return 1;
    return 0;
}

void shard_meta_batch_done(shard_meta_t *m, uint32_t id, const msg_pos_t *pos)
{
    long i = prog_entry(m, id); /* exists: shard_meta_batch_check() made it */

    if (i < 0)
        return;
    if (!pos->last) {
        m->partial[i] = pos->samples;
        return;
    }
    m->prog[i] =
        (msg_progress_t){id, 1, pos->epoch, pos->file, pos->offset, pos->line, pos->samples};
    m->partial[i] = 0;
}

const msg_progress_t *shard_meta_progress_get(const shard_meta_t *m, uint32_t rank)
{
    for (size_t i = 0; i < m->nprog; i++)
        if (m->prog[i].rank == rank)
            return m->prog[i].found ? &m->prog[i] : NULL;
    return NULL;
}

int shard_meta_progress_set(shard_meta_t *m, const msg_progress_t *p)
{
    long i = prog_entry(m, p->rank);

    if (i < 0)
        return (int)i;
    m->prog[i] = *p;
    m->prog[i].found = 1;
    m->partial[i] = 0;
    return 0;
}

void shard_meta_begin_day(shard_meta_t *m, int day)
{
    m->day = day;
    m->nprog = 0;
}

int shard_meta_restore(const ps_conf_t *pc, const model_spec_t *ms, uint64_t dense_total,
                       errbuf_t *eb)
{
    char from[CONF_STR_MAX + 32], current[CONF_STR_MAX + 32];
    meta_t saved, running;
    struct stat st;
    int rc;

    if (!pc->init_from.s[0])
        return 0;
    snprintf(current, sizeof(current), "%s/CURRENT", pc->data.s);
    if (stat(current, &st) == 0) {
        LOG_INFO("%s already holds a store: continuing from it, not from %s", pc->data.s,
                 pc->init_from.s);
        return 0;
    }
    rc = meta_read(pc->init_from.s, &saved, eb);
    if (rc != 0)
        return rc;
    meta_from_spec(&running, ms, (int)pc->shards, (int)pc->day, dense_total);
    rc = meta_check(&saved, &running, pc->init_from.s, eb);
    if (rc != 0)
        return rc;
    snprintf(from, sizeof(from), "%s/shard-%lld", pc->init_from.s, (long long)pc->shard);
    rc = dirs_copy_files(from, pc->data.s, eb);
    if (rc != 0)
        return errbuf_prefix(eb, rc, "restore from checkpoint %s", pc->init_from.s);
    LOG_INFO("restored shard %lld from checkpoint %s (day %d)", (long long)pc->shard,
             pc->init_from.s, saved.day);
    return 0;
}
