/*
 * heads.c - the table of heads and losses and their exact, stable math.
 * See heads.h for the interface.
 *
 * NOTES ON THE DESIGN
 *   Towers give logits a_j and probabilities y_j = sigma(a_j) (0-based:
 *   y0 = pCTR; for esm2 y1 = p(action | click), y2 = p(buy | action),
 *   y3 = p(buy | click, no action)). Every probability a head needs is built
 *   from three shapes:
 *     tower(j)        p = y_j
 *     prod(A, B)      p = pA * pB                    (A, B on disjoint towers)
 *     mix(G, Y, N)    p = pG * pY + (1 - pG) * pN    (disjoint towers)
 *   esm2: pCTR = y0, pCTAVR = y0 y1, pCVR = mix(y1, y2, y3) = y1 y2 + (1-y1) y3,
 *         pCTCVR = y0 * pCVR;  esmm / naive: pCTR = y0, pCVR = y1, pCTCVR = y0 y1.
 *
 *   nmtr (Gao et al., ICDE 2019, "Neural Multi-Task Recommendation from
 *   Multi-Behavior Data"): a cascade in logit space (our reading of the
 *   paper's cascaded prediction: a behaviour's score builds on the
 *   previous behaviour's before the sigmoid). Each behaviour's logit is
 *   the previous behaviour's logit plus its own tower's output:
 *     z_click = a0,  z_action = a0 + a1,  z_buy = a0 + a1 + a2,
 *     pCTR = sigma(z_click), pCTAVR = sigma(z_action), pCTCVR = sigma(z_buy),
 *   each trained against its behaviour on every impression (ctr <- click,
 *   ctavr <- click AND action, ctcvr <- buy). The cascade does not bound
 *   pCTCVR by pCTR, so it has no exact post-click CVR; its pcvr column is
 *   sigma(a1 + a2), the buy logit's rise over the click logit (a ranking
 *   score for clicked rows, not a calibrated p(buy | click)).
 *   Shape: csum(j0..j1) p = sigma(a_j0 + ... + a_j1), lp and lq as tower's
 *   with dlp/da_j = 1 - p and dlq/da_j = -p for every j in the range.
 *
 *   Log domain, never a division by a probability. Each shape is carried as
 *   lp = log p and lq = log(1 - p) together with their gradients dp, dq with
 *   respect to every logit:
 *     tower(j):  lp = log sigma(a_j),  lq = log sigma(-a_j),
 *                dlp/da_j = sigma(-a_j) = 1 - y_j,  dlq/da_j = -sigma(a_j) = -y_j
 *                (log sigma(a) = min(a, 0) - log1p(exp(-|a|)): exact for any a)
 *     prod(A,B): lp = lpA + lpB,                      dp = dpA + dpB
 *                1 - pA pB = (1 - pA) + pA (1 - pB), so
 *                lq = lse(lqA, lpA + lqB),            dq = r1 dqA + r2 (dpA + dqB)
 *     mix(G,Y,N): p = pG pY + (1-pG) pN:
 *                lp = lse(lpG + lpY, lqG + lpN),      dp = r1 (dpG + dpY) + r2 (dqG + dpN)
 *                1 - p = pG (1 - pY) + (1 - pG)(1 - pN):
 *                lq = lse(lpG + lqY, lqG + lqN),      dq = s1 (dpG + dqY) + s2 (dqG + dqN)
 *   where lse(x, y) = log(e^x + e^y) = max + log1p(exp(-|x - y|)) and
 *   r1 = e^(x - lse), r2 = e^(y - lse) are the shares of the two terms
 *   (r1 + r2 = 1). This is d log(u + v) = (u du' + v dv') / (u + v) with
 *   du' = d log u: the ratio u / (u + v) is a share in [0, 1] computed from
 *   a difference of logs, so a tiny pCTCVR (or a tiny 1 - pCTCVR) never
 *   appears in a denominator. All shares and sigmas are in [0, 1], so every
 *   gradient is bounded by a small constant whatever the logits.
 *   The cross-entropy of label l is -lp if l = 1 and -lq if l = 0, with
 *   gradient -dp or -dq.
 *
 *   Relation to the PyTorch reference, which clamps probabilities to
 *   [1e-7, 1 - 1e-7] before the logs: both agree wherever the reference does
 *   not clamp. Where it clamps (a probability beyond 1e-7 of 0 or 1) its
 *   gradient is zero and its loss is capped at -log(1e-7) = 16.1; here the
 *   loss and the gradient are the exact ones. This keeps the gradient check
 *   meaningful for saturated logits and lets a confidently wrong sample
 *   still learn.
 *
 *   Batch losses: loss k is the mean cross-entropy over its rows - every row
 *   of the batch, except naive's CVR loss, which is the mean over the
 *   batch's clicked rows (0 with no gradient when the batch has none); both
 *   as in the PyTorch reference. Total = sum_k weight_k * loss_k.
 *
 *   Labels: ctr <- click; ctavr <- click AND action; ctcvr and cvr <- buy.
 *
 *   Sample weights: row i's cross-entropy is multiplied by w_i in every
 *   loss (the mean still divides by the row count, not by sum w_i), so a
 *   weight scales that sample's gradient. All weights 1 give exactly the
 *   unweighted numbers (multiplying by 1.0 is exact).
 *
 *   Pairwise loss (BPR within a request): the ranked score of row i is
 *   s_i = log p_i, p = pCTR (task click) or pCTCVR (task buy), with its
 *   gradient ds_i = dp as above. A request is a maximal run of consecutive
 *   rows with the same nonzero id (the reader keeps a request's lines in one
 *   batch). Each (i positive, j negative) of the task's label in the same
 *   request is a pair with loss -log sigma(s_i - s_j) = softplus(s_j - s_i)
 *   = -log(p_i / (p_i + p_j)), weighted by w_i w_j:
 *     pair_loss = sum_pairs w_i w_j softplus(s_j - s_i) / pairs
 *     d pair_loss / d s_i = -w_i w_j sigma(s_j - s_i) / pairs, d / d s_j the opposite.
 *   The total adds pair_weight * pair_loss.
 */
#include "model/heads.h"

#include <math.h>
#include <string.h>

#include "common/model_conf.h"

/* Probabilities a head can be trained on or predict. */
enum { P_NONE = 0, P_Y0, P_Y1, P_Y0Y1, P_ESM2_CVR, P_Y0_ESM2_CVR, P_C01, P_C012, P_C12 };

enum { LABEL_CLICK = 0, LABEL_ACTION = 1, LABEL_BUY = 2 };
enum { ROWS_ALL = 0, ROWS_CLICKED = 1 };

typedef struct head_loss {
    const char *name;
    int prob;  /* P_*: the probability trained */
    int label; /* LABEL_* */
    int rows;  /* ROWS_*: which rows the mean runs over */
} head_loss_t;

struct heads {
    const char *name;
    int ntowers;
    int nloss;
    head_loss_t loss[HEADS_MAX_LOSS];
    int pred[HEADS_NPRED]; /* P_* of pctr, pcvr, pctcvr, pctavr */
};

static const heads_t table[] = {
    [MODEL_ESM2] =
        {
            .name = "esm2",
            .ntowers = 4,
            .nloss = 3,
            .loss = {{"ctr", P_Y0, LABEL_CLICK, ROWS_ALL},
                     {"ctavr", P_Y0Y1, LABEL_ACTION, ROWS_ALL},
                     {"ctcvr", P_Y0_ESM2_CVR, LABEL_BUY, ROWS_ALL}},
            .pred = {P_Y0, P_ESM2_CVR, P_Y0_ESM2_CVR, P_Y0Y1},
        },
    [MODEL_ESMM] =
        {
            .name = "esmm",
            .ntowers = 2,
            .nloss = 2,
            .loss = {{"ctr", P_Y0, LABEL_CLICK, ROWS_ALL}, {"ctcvr", P_Y0Y1, LABEL_BUY, ROWS_ALL}},
            .pred = {P_Y0, P_Y1, P_Y0Y1, P_NONE},
        },
    [MODEL_NAIVE] =
        {
            .name = "naive",
            .ntowers = 2,
            .nloss = 2,
            .loss = {{"ctr", P_Y0, LABEL_CLICK, ROWS_ALL}, {"cvr", P_Y1, LABEL_BUY, ROWS_CLICKED}},
            .pred = {P_Y0, P_Y1, P_Y0Y1, P_NONE},
        },
    [MODEL_NMTR] =
        {
            .name = "nmtr",
            .ntowers = 3,
            .nloss = 3,
            .loss = {{"ctr", P_Y0, LABEL_CLICK, ROWS_ALL},
                     {"ctavr", P_C01, LABEL_ACTION, ROWS_ALL},
                     {"ctcvr", P_C012, LABEL_BUY, ROWS_ALL}},
            .pred = {P_Y0, P_C12, P_C012, P_C01},
        },
};

const heads_t *heads_for(int model_type)
{
    if (model_type < 0 || (size_t)model_type >= sizeof(table) / sizeof(table[0]))
        return NULL;
    return &table[model_type];
}

const char *heads_name(const heads_t *h)
{
    return h->name;
}

int heads_ntowers(const heads_t *h)
{
    return h->ntowers;
}

int heads_nloss(const heads_t *h)
{
    return h->nloss;
}

const char *heads_loss_name(const heads_t *h, int k)
{
    return h->loss[k].name;
}

int heads_has_pred(const heads_t *h, int col)
{
    return h->pred[col] != P_NONE;
}

/* log p, log(1 - p) and their gradients w.r.t. the logits. */
typedef struct lterm {
    double lp, lq;
    double dp[HEADS_MAX_TOWERS], dq[HEADS_MAX_TOWERS];
} lterm_t;

/* p = sigma(sum of the logits a_j, j in [j0, j1]): a tower (j0 = j1) or a
 * cascade's running logit (nmtr). */
static void casc(lterm_t *t, const double *a, int j0, int j1)
{
    double x = 0.0, e, l, sp, sn;

    for (int j = j0; j <= j1; j++)
        x += a[j];
    e = exp(-fabs(x));
    l = log1p(e);
    sp = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e); /* sigma(x), no cancellation */
    sn = x >= 0 ? e / (1.0 + e) : 1.0 / (1.0 + e); /* sigma(-x) */
    memset(t, 0, sizeof(*t));
    t->lp = (x < 0 ? x : 0.0) - l;
    t->lq = (x > 0 ? -x : 0.0) - l;
    for (int j = j0; j <= j1; j++) {
        t->dp[j] = sn;
        t->dq[j] = -sp;
    }
}

static void tower(lterm_t *t, const double *a, int j)
{
    casc(t, a, j, j);
}

/* log(e^x + e^y) and the two shares e^(x - lse), e^(y - lse). */
static double lse(double x, double y, double *rx, double *ry)
{
    double e = exp(-fabs(x - y));
    if (x >= y) {
        *rx = 1.0 / (1.0 + e);
        *ry = e / (1.0 + e);
        return x + log1p(e);
    }
    *rx = e / (1.0 + e);
    *ry = 1.0 / (1.0 + e);
    return y + log1p(e);
}

/* p = pA pB */
static void prod(lterm_t *t, const lterm_t *A, const lterm_t *B)
{
    double r1, r2;

    t->lp = A->lp + B->lp;
    t->lq = lse(A->lq, A->lp + B->lq, &r1, &r2);
    for (int j = 0; j < HEADS_MAX_TOWERS; j++) {
        t->dp[j] = A->dp[j] + B->dp[j];
        t->dq[j] = r1 * A->dq[j] + r2 * (A->dp[j] + B->dq[j]);
    }
}

/* p = pG pY + (1 - pG) pN */
static void mix(lterm_t *t, const lterm_t *G, const lterm_t *Y, const lterm_t *N)
{
    double r1, r2, s1, s2;

    t->lp = lse(G->lp + Y->lp, G->lq + N->lp, &r1, &r2);
    t->lq = lse(G->lp + Y->lq, G->lq + N->lq, &s1, &s2);
    for (int j = 0; j < HEADS_MAX_TOWERS; j++) {
        t->dp[j] = r1 * (G->dp[j] + Y->dp[j]) + r2 * (G->dq[j] + N->dp[j]);
        t->dq[j] = s1 * (G->dp[j] + Y->dq[j]) + s2 * (G->dq[j] + N->dq[j]);
    }
}

/* The probability `prob` of one sample, given its logits a and
 * y[j] = tower(j) for its towers. */
static void prob_eval(lterm_t *t, int prob, const double *a, const lterm_t *y)
{
    lterm_t cvr;

    switch (prob) {
    case P_C01: casc(t, a, 0, 1); return;
    case P_C012: casc(t, a, 0, 2); return;
    case P_C12: casc(t, a, 1, 2); return;
    case P_Y0: *t = y[0]; return;
    case P_Y1: *t = y[1]; return;
    case P_Y0Y1: prod(t, &y[0], &y[1]); return;
    case P_ESM2_CVR: mix(t, &y[1], &y[2], &y[3]); return;
    case P_Y0_ESM2_CVR:
        mix(&cvr, &y[1], &y[2], &y[3]);
        prod(t, &y[0], &cvr);
        return;
    }
    memset(t, 0, sizeof(*t));
}

static int label_of(int label, size_t i, const uint8_t *click, const uint8_t *action,
                    const uint8_t *buy)
{
    switch (label) {
    case LABEL_CLICK: return click[i] != 0;
    case LABEL_ACTION: return click[i] != 0 && action[i] != 0;
    default: return buy[i] != 0;
    }
}

/* softplus(x) = log(1 + e^x) and sigma(x), stable for any x. */
static double softplus(double x, double *sig)
{
    double e = exp(-fabs(x));
    *sig = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    return (x > 0 ? x : 0.0) + log1p(e);
}

/*
 * The pairwise loss of smp over the batch (see the notes); adds its
 * gradient times pair_weight to dlogits (if not NULL). Returns the loss.
 */
static double pair_loss(const heads_t *h, const double *logits, const uint8_t *click,
                        const uint8_t *buy, heads_sample_t *smp, size_t B, double *dlogits)
{
    const int T = h->ntowers, W = HEADS_MAX_TOWERS + 1;
    const int prob = h->pred[smp->pair_task == HEADS_PAIR_CLICK ? HEADS_PCTR : HEADS_PCTCVR];
    const uint8_t *lab = smp->pair_task == HEADS_PAIR_CLICK ? click : buy;
    double *wk = smp->work, sum = 0.0, scale;
    size_t pairs = 0;

    /* count the pairs first: the gradient is a mean over them */
    for (size_t a = 0, e; a < B; a = e) {
        size_t np = 0, nn = 0;
        for (e = a; e < B && smp->req[e] == smp->req[a]; e++) {
            np += lab[e] != 0;
            nn += lab[e] == 0;
        }
        if (smp->req[a] != 0)
            pairs += np * nn;
    }
    smp->pairs = pairs;
    if (pairs == 0)
        return 0.0;
    scale = 1.0 / (double)pairs;
    for (size_t a = 0, e; a < B; a = e) {
        for (e = a; e < B && smp->req[e] == smp->req[a]; e++) {
            lterm_t y[HEADS_MAX_TOWERS], p;
            for (int j = 0; j < T; j++)
                tower(&y[j], logits + e * (size_t)T, j);
            prob_eval(&p, prob, logits + e * (size_t)T, y);
            wk[e * W] = p.lp;
            memcpy(wk + e * W + 1, p.dp, (size_t)T * sizeof(double));
        }
        if (smp->req[a] == 0)
            continue;
        for (size_t i = a; i < e; i++) {
            if (!lab[i])
                continue;
            for (size_t j = a; j < e; j++) {
                double sig, wij, c;
                if (lab[j])
                    continue;
                wij = smp->weight ? (double)smp->weight[i] * (double)smp->weight[j] : 1.0;
                sum += wij * softplus(wk[j * W] - wk[i * W], &sig);
                if (!dlogits)
                    continue;
                c = smp->pair_weight * wij * sig * scale;
                for (int t = 0; t < T; t++) {
                    dlogits[i * (size_t)T + t] -= c * wk[i * W + 1 + t];
                    dlogits[j * (size_t)T + t] += c * wk[j * W + 1 + t];
                }
            }
        }
    }
    return sum * scale;
}

double heads_loss(const heads_t *h, const double *logits, const uint8_t *click,
                  const uint8_t *action, const uint8_t *buy, heads_sample_t *smp, size_t B,
                  const float *weight, double loss[HEADS_MAX_LOSS], double *dlogits)
{
    double w[HEADS_MAX_LOSS];

    for (int k = 0; k < h->nloss; k++)
        w[k] = (double)weight[k];
    return heads_loss_w(h, logits, click, action, buy, smp, B, w, loss, dlogits);
}

double heads_loss_w(const heads_t *h, const double *logits, const uint8_t *click,
                    const uint8_t *action, const uint8_t *buy, heads_sample_t *smp, size_t B,
                    const double *weight, double loss[HEADS_MAX_LOSS], double *dlogits)
{
    const float *sw = smp ? smp->weight : NULL;
    const int T = h->ntowers;
    double scale[HEADS_MAX_LOSS], total = 0.0;

    /* 1 / (rows of loss k) */
    for (int k = 0; k < h->nloss; k++) {
        size_t n = B;
        if (h->loss[k].rows == ROWS_CLICKED) {
            n = 0;
            for (size_t i = 0; i < B; i++)
                n += click[i] != 0;
        }
        scale[k] = n ? 1.0 / (double)n : 0.0;
        loss[k] = 0.0;
    }
    for (size_t i = 0; i < B; i++) {
        lterm_t y[HEADS_MAX_TOWERS], p;
        double *d = dlogits ? dlogits + i * (size_t)T : NULL;

        for (int j = 0; j < T; j++)
            tower(&y[j], logits + i * (size_t)T, j);
        if (d)
            memset(d, 0, (size_t)T * sizeof(double));
        for (int k = 0; k < h->nloss; k++) {
            const head_loss_t *hl = &h->loss[k];
            if (hl->rows == ROWS_CLICKED && !click[i])
                continue;
            prob_eval(&p, hl->prob, logits + i * (size_t)T, y);
            int l = label_of(hl->label, i, click, action, buy);
            double wi = sw ? (double)sw[i] : 1.0;
            loss[k] -= wi * (l ? p.lp : p.lq);
            if (d) {
                double c = -weight[k] * scale[k] * wi;
                for (int j = 0; j < T; j++)
                    d[j] += c * (l ? p.dp[j] : p.dq[j]);
            }
        }
    }
    for (int k = 0; k < h->nloss; k++) {
        loss[k] *= scale[k];
        total += weight[k] * loss[k];
    }
    if (smp) {
        smp->pair_loss = 0.0;
        smp->pairs = 0;
        if (smp->req && smp->pair_task != HEADS_PAIR_NONE) {
            smp->pair_loss = pair_loss(h, logits, click, buy, smp, B, dlogits);
            total += smp->pair_weight * smp->pair_loss;
        }
    }
    return total;
}

void heads_gram(const heads_t *h, const double *logits, const uint8_t *click, const uint8_t *action,
                const uint8_t *buy, const heads_sample_t *smp, size_t B, double *G)
{
    const float *sw = smp ? smp->weight : NULL;
    const int T = h->ntowers, K = h->nloss;
    double scale[HEADS_MAX_LOSS];

    for (int k = 0; k < K; k++) {
        size_t n = B;
        if (h->loss[k].rows == ROWS_CLICKED) {
            n = 0;
            for (size_t i = 0; i < B; i++)
                n += click[i] != 0;
        }
        scale[k] = n ? 1.0 / (double)n : 0.0;
    }
    memset(G, 0, (size_t)(K * K) * sizeof(double));
    for (size_t i = 0; i < B; i++) {
        const double *a = logits + i * (size_t)T;
        double g[HEADS_MAX_LOSS][HEADS_MAX_TOWERS];
        lterm_t y[HEADS_MAX_TOWERS], p;

        for (int j = 0; j < T; j++)
            tower(&y[j], a, j);
        for (int k = 0; k < K; k++) {
            const head_loss_t *hl = &h->loss[k];
            memset(g[k], 0, sizeof(g[k]));
            if (hl->rows == ROWS_CLICKED && !click[i])
                continue;
            prob_eval(&p, hl->prob, a, y);
            int l = label_of(hl->label, i, click, action, buy);
            double c = -scale[k] * (sw ? (double)sw[i] : 1.0);
            for (int j = 0; j < T; j++)
                g[k][j] = c * (l ? p.dp[j] : p.dq[j]);
        }
        /* row i's gradients touch only row i's logits: the Gram is a sum over rows */
        for (int k = 0; k < K; k++)
            for (int m = k; m < K; m++) {
                double d = 0.0;
                for (int j = 0; j < T; j++)
                    d += g[k][j] * g[m][j];
                G[k * K + m] += d;
            }
    }
    for (int k = 0; k < K; k++)
        for (int m = 0; m < k; m++)
            G[k * K + m] = G[m * K + k];
}

void heads_predict(const heads_t *h, const double *logits, size_t B, float *out)
{
    const int T = h->ntowers;

    for (size_t i = 0; i < B; i++) {
        lterm_t y[HEADS_MAX_TOWERS], p;
        for (int j = 0; j < T; j++)
            tower(&y[j], logits + i * (size_t)T, j);
        for (int c = 0; c < HEADS_NPRED; c++) {
            if (h->pred[c] == P_NONE) {
                out[i * HEADS_NPRED + c] = NAN;
                continue;
            }
            prob_eval(&p, h->pred[c], logits + i * (size_t)T, y);
            out[i * HEADS_NPRED + c] = (float)exp(p.lp);
        }
    }
}
