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
 * and provides model_t (layer table, sizes) and the heads.
 *
 * Scratch layout for a batch of B rows (see model.c's notes): the outputs of
 * layer l of tower t are act + B * layer[t][l].act, (B, layer[t][l].out);
 * a tower's backward ping-pongs between two (B, max_width) buffers in tmp.
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
 * A whole step, one thread: forward every tower, the heads' losses, and
 * (if g) backward every tower. Scratch: act (B * act_width), tmp
 * (2 * B * max_width), lg and dlg (B * ntowers). Returns the total loss.
 */
static double FN(net_step)(const model_t *m, const REAL *p, REAL *g, const REAL *x,
                           const uint8_t *click, const uint8_t *action, const uint8_t *buy,
                           size_t B, REAL *act, REAL *tmp, double *lg, double *dlg, REAL *dx,
                           double loss[HEADS_MAX_LOSS])
{
    double total;
    const size_t T = (size_t)m->ntowers;

    for (int t = 0; t < m->ntowers; t++)
        FN(tower_forward)(m, t, p, x, B, act);
    FN(gather_logits)(m, act, B, lg);
    total = heads_loss(m->heads, lg, click, action, buy, B, m->spec.loss_weight, loss,
                       g ? dlg : NULL);
    if (!g)
        return total;
    for (int t = 0; t < m->ntowers; t++) {
        for (size_t i = 0; i < B; i++)
            tmp[i] = (REAL)dlg[i * T + (size_t)t];
        FN(tower_backward)(m, t, p, g, x, B, act, tmp, dx, t > 0);
    }
    return total;
}
