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
 *   DENSE_FORWARD(...)   dense_forward or dense_forward_ref
 *   DENSE_BACKWARD(...)  dense_backward or dense_backward_ref
 *   BOTTOM_FORWARD, BOTTOM_BACKWARD, BOTTOM_OUTPUT, BOTTOM_DOUTPUT
 *                        bottom.h's kernels of the same precision
 * and provides model_t (layer table, sizes, bottom), the heads and the team.
 *
 * With a bottom (model_t's bot), tower t reads the bottom's output t instead
 * of x and stores its input gradient into the bottom's scratch; the bottom
 * runs before the towers' forward and after their backward, in the caller.
 *
 * Scratch layout for a batch of B rows (see model.c's notes): the outputs of
 * layer l of tower t are act + B * layer[t][l].act, (B, layer[t][l].out);
 * a tower's backward ping-pongs between two (B, max_width) buffers in tmp.
 * The double path runs on the same team as the float one, so the check
 * covers the split of the towers across threads and the sum of dx too.
 */

/* act <- every layer output of tower t for input x (B,D). */
static void FN(tower_forward)(const model_t *m, int t, const REAL *p, const REAL *x, size_t B,
                              REAL *act)
{
    const REAL *in = x;

    for (int l = 0; l < m->depth; l++) {
        const layer_t *L = &m->layer[t][l];
        REAL *out = act + B * L->act;
        DENSE_FORWARD(out, in, p + L->w, p + L->b, B, L->in, L->out, L->fn);
        in = out;
    }
}

/*
 * Backward of tower t. tmp[0..B) holds d loss / d logit of the tower on
 * entry; tmp is 2 * B * max_width. Writes the tower's parameter gradients
 * into g and stores (accum = 0) or adds (accum = 1) its input gradient into
 * dx (B,D); dx NULL skips it.
 */
static void FN(tower_backward)(const model_t *m, int t, const REAL *p, REAL *g, const REAL *x,
                               size_t B, const REAL *act, REAL *tmp, REAL *dx, int accum)
{
    REAL *dout = tmp, *din = tmp + B * m->max_width;

    for (int l = m->depth - 1; l >= 0; l--) {
        const layer_t *L = &m->layer[t][l];
        const REAL *in = l ? act + B * m->layer[t][l - 1].act : x;
        REAL *next = l ? din : dx;
        DENSE_BACKWARD(next, g + L->w, g + L->b, dout, in, p + L->w, act + B * L->act, B, L->in,
                       L->out, L->fn, l ? 0 : accum);
        din = dout;
        dout = next;
    }
}

/* lg (B,T) <- the towers' logits, read from each tower's last layer. */
static void FN(gather_logits)(const model_t *m, const REAL *act, size_t B, double *lg)
{
    for (int t = 0; t < m->ntowers; t++) {
        const REAL *z = act + B * m->layer[t][m->depth - 1].act;
        for (size_t i = 0; i < B; i++)
            lg[i * (size_t)m->ntowers + (size_t)t] = (double)z[i];
    }
}

/*
 * One step's work shared by a team: member r of n runs towers r, r + n, ...
 * Each member has its own backward scratch; member 0 writes the input
 * gradient into dx, member r > 0 into its own partial dxp[r - 1], and the
 * partials are summed after the join (towers share x, so their dx add up).
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
    REAL *dxp;                         /* member r > 0: dxp + (r - 1) * B * D */
    const double *dlg;                 /* (B, T) d loss / d logits */
    REAL *bs;                          /* the bottom's scratch (model_t's bot only) */
    const REAL *tin[HEADS_MAX_TOWERS]; /* with a bottom: tower t's input (B, in_0) */
    REAL *dtin[HEADS_MAX_TOWERS];      /* and its gradient */
} FN(job_t);

static void FN(run_forward)(void *arg, int r, int n)
{
    FN(job_t) *j = arg;

    for (int t = r; t < j->m->ntowers; t += n)
        FN(tower_forward)(j->m, t, j->p, j->m->bot ? j->tin[t] : j->x, j->B, j->act);
}

static void FN(run_backward)(void *arg, int r, int n)
{
    FN(job_t) *j = arg;
    const size_t B = j->B, T = (size_t)j->m->ntowers, D = (size_t)j->m->spec.input_dim;
    REAL *tmp = j->tmp + (size_t)r * 2 * B * j->m->max_width;
    REAL *dx = !j->dx ? NULL : r == 0 ? j->dx : j->dxp + (size_t)(r - 1) * B * D;

    for (int t = r; t < j->m->ntowers; t += n) {
        for (size_t i = 0; i < B; i++)
            tmp[i] = (REAL)j->dlg[i * T + (size_t)t];
        if (j->m->bot)
            FN(tower_backward)(j->m, t, j->p, j->g, j->tin[t], B, j->act, tmp, j->dtin[t], 0);
        else
            FN(tower_backward)(j->m, t, j->p, j->g, j->x, B, j->act, tmp, dx, t >= n);
    }
}

/* The bottom (if any) in the caller, then every tower on the team. */
static void FN(net_forward)(team_t *team, FN(job_t) * j)
{
    const model_t *m = j->m;

    if (m->bot) {
        BOTTOM_FORWARD(m->bot, j->bs, j->p + m->bottom_p, j->x, j->B);
        for (int t = 0; t < m->ntowers; t++) {
            j->tin[t] = BOTTOM_OUTPUT(m->bot, j->bs, t, j->B);
            j->dtin[t] = BOTTOM_DOUTPUT(m->bot, j->bs, t, j->B);
        }
    }
    team_run(team, FN(run_forward), j);
}

/*
 * A whole step on the team: forward every tower, the heads' losses and,
 * if j->g, backward every tower and the sum of the input gradients. lg and
 * dlg are (B, T) scratch. Returns the total loss.
 */
static double FN(net_step)(team_t *team, FN(job_t) * j, const uint8_t *click, const uint8_t *action,
                           const uint8_t *buy, heads_sample_t *smp, double *lg, double *dlg,
                           double loss[HEADS_MAX_LOSS])
{
    const model_t *m = j->m;
    const size_t n = (size_t)team_size(team), B = j->B, D = (size_t)m->spec.input_dim;
    double total;

    FN(net_forward)(team, j);
    FN(gather_logits)(m, j->act, B, lg);
    total = FN(net_loss)(m, j->p, j->g, lg, click, action, buy, smp, B, loss, j->g ? dlg : NULL);
    if (!j->g)
        return total;
    j->dlg = dlg;
    team_run(team, FN(run_backward), j);
    if (m->bot)
        BOTTOM_BACKWARD(m->bot, j->bs, j->p + m->bottom_p, j->g + m->bottom_p, j->x, B, j->dx);
    else if (j->dx)
        for (size_t r = 1; r < n && r < (size_t)m->ntowers; r++) {
            const REAL *part = j->dxp + (r - 1) * B * D;
            for (size_t i = 0; i < B * D; i++)
                j->dx[i] += part[i];
        }
    return total;
}
