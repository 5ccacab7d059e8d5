/*
 * bias_step_tmpl.h - the bias tower's part of a training step (bias.h),
 * written once for both precisions: tower_tmpl.h includes it with its REAL
 * and FN, and the includer of tower_tmpl.h defines BIAS_FORWARD and
 * BIAS_BACKWARD (bias.h's kernels of the precision).
 *
 * net_step adds the bias tower's logit to the click logit (tower 0) before
 * the heads' losses, and gives the click logit's gradient to the bias
 * logit: j->x is then the main part of the pooled rows, j->xb the bias
 * part (bias_split), j->dxb its gradient (bias_merge joins the two).
 */

/* lg (B, T): column 0 += the bias logit of each row. */
static void FN(bias_logit_add)(FN(job_t) * j, double *lg)
{
    const model_t *m = j->m;
    const size_t T = (size_t)m->ntowers;
    const REAL *zb = BIAS_FORWARD(m->bias, j->bsc, j->p + m->bias_p, j->xb, j->B);

    for (size_t i = 0; i < j->B; i++)
        lg[i * T] += (double)zb[i];
}

/* The bias tower's backward from the click logit's gradient in dlg (B, T). */
static void FN(bias_logit_back)(FN(job_t) * j, const double *dlg)
{
    const model_t *m = j->m;
    const size_t T = (size_t)m->ntowers;

    for (size_t i = 0; i < j->B; i++)
        j->dz[i] = dlg[i * T];
    BIAS_BACKWARD(m->bias, j->bsc, j->p + m->bias_p, j->g + m->bias_p, j->xb, j->B, j->dz, j->dxb);
}
