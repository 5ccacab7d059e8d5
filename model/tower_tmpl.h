/*
 * tower_tmpl.h - one tower's forward and backward pass and one whole
 * training step, written once for both precisions. model.c includes this
 * file twice: with REAL = float and the OpenBLAS kernels (the production
 * path) and with REAL = double and the plain-loop kernels (the gradient
 * check path), so the double check exercises exactly the code that trains.
 *
 * The includer defines:
 *   REAL                 float or double
 *   FN(name)             name with a precision suffix
 *   DENSE_FORWARD_LD, DENSE_BACKWARD_LD
 *                        dense.h's strided kernels of the same precision
 *   BOTTOM_FORWARD, BOTTOM_BACKWARD, BOTTOM_OUTPUT, BOTTOM_DOUTPUT
 *                        bottom.h's kernels of the same precision
 * and provides model_t (layer table, sizes, bottom), the heads and the team.
 *
 * With a bottom (model_t's bot), tower t reads the bottom's output t instead
 * of x and stores its input gradient into the bottom's scratch; the bottom
 * runs before the towers' forward and after their backward, on the team.
 *
 * Scratch layout for a batch of B rows (see model.c's notes): the outputs of
 * layer l of tower t are act + B * layer[t][l].act, (B, layer[t][l].out);
 * a tower's backward ping-pongs between two (B, max_width) buffers in tmp.
 * The double path runs on the same team as the float one, so the check
 * covers the split of the towers across threads and the sum of dx too.
 */

/*
 * Concat models (no bottom): layer 0 of every tower reads x, so the T
 * towers' layer 0 is run as one layer of T * H0 units (H0 = its width):
 * W0cat (T*H0, D) is the towers' W0 stacked and b0cat (T*H0) their b0,
 * packed from the parameter block before each forward (the block's layout
 * and the file format stay as they are). Its output F (B, T*H0) holds
 * tower t's layer-0 output in columns [t*H0, (t+1)*H0), and dF the same
 * for the gradients.
 *
 * The team splits the fused layer by towers, like the rest of the step:
 * member r owns a contiguous block of towers (member_towers) and with it
 * one block of columns of W0cat, F and dF, which no other core touches.
 * Split by rows instead, every member packed all of W0cat for its products
 * and read the other core's rows of F and dF, and each member's half of a
 * product took 0.75 of the whole one's time. The dx product is summed over
 * the members: member r computes its towers' share of it (dF's block times
 * W0cat's), member 0 into dx and the others into their backward scratch,
 * and the caller adds them in member order. dx is therefore the same for a
 * given team size but rounds differently across sizes; the parameter
 * gradients, losses and predictions are the same bits for every size.
 *
 * F's and dF's rows are m->ldf apart, not T*H0: esm2's 4 x 256 columns
 * put each row 4 KiB after the last, on the same cache sets, and the
 * products that read or write a tower's columns of them ran 10-20% slower
 * than on contiguous matrices.
 */
/* Towers [t0, t1)'s rows of wcat <- W0cat (T*H0, D) then b0cat (T*H0),
 * from parameter block p. */
static void FN(pack_first)(const model_t *m, const REAL *p, REAL *wcat, int t0, int t1)
{
    const size_t H0 = m->layer[0][0].out, D = m->layer[0][0].in, TH = (size_t)m->ntowers * H0;

    for (int t = t0; t < t1; t++) {
        const layer_t *L = &m->layer[t][0];
        memcpy(wcat + (size_t)t * H0 * D, p + L->w, H0 * D * sizeof(REAL));
        memcpy(wcat + TH * D + (size_t)t * H0, p + L->b, H0 * sizeof(REAL));
    }
}

/* act <- every layer output of tower t for input x (B,D); fused (F not
 * NULL): layers 1.. only, reading tower t's columns of F. */
static void FN(tower_forward)(const model_t *m, int t, const REAL *p, const REAL *x, size_t B,
                              REAL *act, const REAL *F)
{
    const size_t H0 = m->layer[0][0].out;
    const REAL *in = F ? F + (size_t)t * H0 : x;
    size_t ldi = F ? m->ldf : m->layer[t][0].in;

    for (int l = F ? 1 : 0; l < m->depth; l++) {
        const layer_t *L = &m->layer[t][l];
        REAL *out = act + B * L->act;
        DENSE_FORWARD_LD(out, L->out, in, ldi, p + L->w, p + L->b, B, L->in, L->out, L->fn);
        in = out;
        ldi = L->out;
    }
}

/*
 * Backward of tower t. tmp[0..B) holds d loss / d logit of the tower on
 * entry; tmp is 2 * B * max_width. Writes the tower's parameter gradients
 * into g and stores (accum = 0) or adds (accum = 1) its input gradient into
 * dx (B,D); dx NULL skips it. Fused (F, dF not NULL): stores tower t's
 * gradient w.r.t. its layer-0 pre-activation into its columns of dF and
 * its layer 0's dW and db into g; dx of the fused layer is the caller's
 * (run_first_backward), once every tower's columns of dF are in.
 */
static void FN(tower_backward)(const model_t *m, int t, const REAL *p, REAL *g, const REAL *x,
                               size_t B, const REAL *act, REAL *tmp, REAL *dx, int accum,
                               const REAL *F, REAL *dF)
{
    const size_t H0 = m->layer[0][0].out, LF = m->ldf;
    REAL *dout = tmp, *din = tmp + B * m->max_width;
    const layer_t *L0;
    int low = F ? 1 : 0;

    for (int l = m->depth - 1; l >= low; l--) {
        const layer_t *L = &m->layer[t][l];
        const REAL *in = !l            ? x
                         : l == 1 && F ? F + (size_t)t * H0
                                       : act + B * m->layer[t][l - 1].act;
        size_t ldi = l == 1 && F ? LF : L->in;
        REAL *next = !l ? dx : l == 1 && F ? dF + (size_t)t * H0 : din;
        size_t ldn = l == 1 && F ? LF : L->in;
        DENSE_BACKWARD_LD(next, ldn, g + L->w, g + L->b, dout, L->out, in, ldi, p + L->w,
                          act + B * L->act, L->out, B, L->in, L->out, L->fn, l ? 0 : accum);
        din = dout;
        dout = next;
    }
    if (!F)
        return;
    if (m->depth == 1) /* layer 0 is the logit layer: its gradient is the input one */
        for (size_t i = 0; i < B; i++)
            dF[i * LF + (size_t)t] = tmp[i];
    L0 = &m->layer[t][0]; /* the ReLU mask and db0 in one pass over the columns */
    DENSE_BACKWARD_LD(NULL, 0, g + L0->w, g + L0->b, dF + (size_t)t * H0, LF, x, L0->in, NULL,
                      F + (size_t)t * H0, LF, B, L0->in, H0, L0->fn, 0);
}

/* lg (B,T) <- the towers' logits, read from each tower's last layer. */
static void FN(gather_logits)(const model_t *m, const REAL *act, const REAL *F, size_t B,
                              double *lg)
{
    const size_t T = (size_t)m->ntowers;

    for (size_t t = 0; t < T; t++) {
        const int last = m->depth - 1;
        const REAL *z = F && !last ? F + t : act + B * m->layer[t][last].act;
        const size_t ld = F && !last ? m->ldf : 1;
        for (size_t i = 0; i < B; i++)
            lg[i * T + t] = (double)z[i * ld];
    }
}

/*
 * One step's work shared by a team: member r of n runs its block of towers
 * (member_towers) and those towers' columns of the fused layer. Each member
 * has its own backward scratch.
 */
typedef struct FN(job) {
    const model_t *m;
    const REAL *p; /* parameter block */
    REAL *g;       /* gradient block, NULL: forward only */
    const REAL *x; /* (B, D) */
    size_t B;
    REAL *act;                         /* B * act_width */
    REAL *tmp;                         /* member r: tmp + r * 2 * B * max_width */
    REAL *dx;                          /* (B, D) or NULL */
    REAL *wcat;                        /* fused: W0cat then b0cat */
    REAL *F, *dF;                      /* fused: (B, T*H0) each, rows m->ldf apart */
    const double *dlg;                 /* (B, T) d loss / d logits */
    REAL *bs;                          /* the bottom's scratch (model_t's bot only) */
    REAL *bmem;                        /* and its per-member scratch */
    const REAL *tin[HEADS_MAX_TOWERS]; /* with a bottom: tower t's input (B, in_0) */
    REAL *dtin[HEADS_MAX_TOWERS];      /* and its gradient */
    /* the bias tower (bias.h; model_t's bias only): x is then the main part */
    const REAL *xb; /* (B, bias_dim): the bias part of the pooled rows */
    REAL *dxb;      /* its gradient, or NULL */
    REAL *bsc;      /* the bias tower's scratch */
    double *dz;     /* B: gradient of the bias logit */
} FN(job_t);

/* Fused layer 0, forward: towers [t0, t1)'s columns of F. */
static void FN(first_forward)(FN(job_t) * j, int t0, int t1)
{
    const model_t *m = j->m;
    const layer_t *L = &m->layer[0][0];
    const size_t D = L->in, H0 = L->out, TH = (size_t)m->ntowers * H0, c0 = (size_t)t0 * H0;

    FN(pack_first)(m, j->p, j->wcat, t0, t1);
    DENSE_FORWARD_LD(j->F + c0, m->ldf, j->x, D, j->wcat + c0 * D, j->wcat + TH * D + c0, j->B, D,
                     (size_t)(t1 - t0) * H0, L->fn);
}

/* Fused layer 0, backward: out (B, D) <- towers [t0, t1)'s share of
 * dx = dF W0cat (dF masked, and dW0 and db0 written, by each tower's
 * backward); zeros for no towers. */
static void FN(first_dx)(FN(job_t) * j, int t0, int t1, REAL *out)
{
    const model_t *m = j->m;
    const size_t D = m->layer[0][0].in, H0 = m->layer[0][0].out, c0 = (size_t)t0 * H0;

    if (t1 > t0)
        DENSE_BACKWARD_LD(out, D, NULL, NULL, j->dF + c0, m->ldf, NULL, 0, j->wcat + c0 * D, NULL,
                          0, j->B, D, (size_t)(t1 - t0) * H0, DENSE_LINEAR, 0);
    else
        memset(out, 0, j->B * D * sizeof(REAL));
}

/* Member r's towers: the fused layer's columns of them first (concat). */
static void FN(run_forward)(void *arg, int r, int n)
{
    FN(job_t) *j = arg;
    int t0, t1;

    member_towers(j->m, r, n, &t0, &t1);
    if (j->F && t1 > t0)
        FN(first_forward)(j, t0, t1);
    for (int t = t0; t < t1; t++)
        FN(tower_forward)(j->m, t, j->p, j->m->bot ? j->tin[t] : j->x, j->B, j->act, j->F);
}

/* Member r's backward scratch (2 * B * max_width). */
static REAL *FN(member_tmp)(const FN(job_t) * j, int r)
{
    return j->tmp + (size_t)r * 2 * j->B * j->m->max_width;
}

/* Member r's towers backward, then (concat, dx wanted) their share of the
 * fused layer's dx: member 0's into dx, member r's into its scratch. */
static void FN(run_backward)(void *arg, int r, int n)
{
    FN(job_t) *j = arg;
    const size_t B = j->B, T = (size_t)j->m->ntowers;
    REAL *tmp = FN(member_tmp)(j, r);
    int t0, t1;

    member_towers(j->m, r, n, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        for (size_t i = 0; i < B; i++)
            tmp[i] = (REAL)j->dlg[i * T + (size_t)t];
        if (j->m->bot)
            FN(tower_backward)
        (j->m, t, j->p, j->g, j->tin[t], B, j->act, tmp, j->dtin[t], 0, NULL, NULL);
        else FN(tower_backward)(j->m, t, j->p, j->g, j->x, B, j->act, tmp, NULL, 0, j->F, j->dF);
    }
    if (!j->m->bot && j->dx)
        FN(first_dx)(j, t0, t1, r ? tmp : j->dx);
}

/* dx += every other member's share of the fused layer's dx, in member order. */
static void FN(sum_first_dx)(const FN(job_t) * j, int n)
{
    const size_t len = j->B * j->m->layer[0][0].in;

    for (int r = 1; r < n; r++) {
        const REAL *part = FN(member_tmp)(j, r);
        for (size_t i = 0; i < len; i++)
            j->dx[i] += part[i];
    }
}

/* The bottom (if any) or the fused layer 0, then every tower on the team. */
static void FN(net_forward)(team_t *team, FN(job_t) * j)
{
    const model_t *m = j->m;

    if (m->bot) {
        BOTTOM_FORWARD(m->bot, team, j->bs, j->p + m->bottom_p, j->x, j->B);
        for (int t = 0; t < m->ntowers; t++) {
            j->tin[t] = BOTTOM_OUTPUT(m->bot, j->bs, t, j->B);
            j->dtin[t] = BOTTOM_DOUTPUT(m->bot, j->bs, t, j->B);
        }
        j->F = j->dF = NULL;
    }
    team_run(team, FN(run_forward), j);
}

#include "model/bias_step_tmpl.h"

/*
 * A whole step on the team: forward every tower, the heads' losses and,
 * if j->g, backward every tower and the input gradient. lg and dlg are
 * (B, T) scratch. Returns the total loss.
 */
static double FN(net_step)(team_t *team, FN(job_t) * j, const uint8_t *click, const uint8_t *action,
                           const uint8_t *buy, heads_sample_t *smp, double *lg, double *dlg,
                           double loss[HEADS_MAX_LOSS])
{
    const model_t *m = j->m;
    double total;

    FN(net_forward)(team, j);
    FN(gather_logits)(m, j->act, j->F, j->B, lg);
    if (m->bias)
        FN(bias_logit_add)(j, lg);
    total = FN(net_loss)(m, j->p, j->g, lg, click, action, buy, smp, j->B, loss, j->g ? dlg : NULL);
    if (!j->g)
        return total;
    j->dlg = dlg;
    team_run(team, FN(run_backward), j);
    if (m->bot)
        BOTTOM_BACKWARD(m->bot, team, j->bs, j->p + m->bottom_p, j->g + m->bottom_p, j->x, j->B,
                        j->dx, j->bmem);
    else if (j->dx)
        FN(sum_first_dx)(j, team_size(team));
    if (m->bias)
        FN(bias_logit_back)(j, dlg);
    return total;
}
