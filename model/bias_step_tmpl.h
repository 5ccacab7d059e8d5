/*
 * bias_step_tmpl.h - a whole training step of a model with a bias tower
 * (bias.h), written once for both precisions like tower_tmpl.h, which
 * model.c includes before this file with the same REAL and FN.
 *
 * It is tower_tmpl.h's net_step with one change: the bias tower's logit is
 * added to the click logit (tower 0) before the heads' losses, and the
 * click logit's gradient is the bias logit's gradient too. The includer
 * also defines BIAS_FORWARD and BIAS_BACKWARD (bias.h's kernels of the
 * precision). j->x is the main part of the pooled rows and j->dx its
 * gradient; xb (B, bias_dim) is the bias part, dxb (may be NULL) its
 * gradient, bs the bias tower's scratch, dz (B) doubles of scratch.
 */
static double FN(bias_net_step)(team_t *team, FN(job_t) * j, const REAL *xb, REAL *bs, REAL *dxb,
                                double *dz, const uint8_t *click, const uint8_t *action,
                                const uint8_t *buy, heads_sample_t *smp, double *lg, double *dlg,
                                double loss[HEADS_MAX_LOSS])
{
    const model_t *m = j->m;
    const size_t n = (size_t)team_size(team), B = j->B, T = (size_t)m->ntowers;
    const size_t D = (size_t)m->spec.input_dim;
    const REAL *zb;
    double total;

    FN(net_forward)(team, j);
    FN(gather_logits)(m, j->act, B, lg);
    zb = BIAS_FORWARD(m->bias, bs, j->p + m->bias_p, xb, B);
    for (size_t i = 0; i < B; i++)
        lg[i * T] += (double)zb[i];
    total = FN(net_loss)(m, j->p, j->g, lg, click, action, buy, smp, B, loss, j->g ? dlg : NULL);
    if (!j->g)
        return total;
    j->dlg = dlg;
    team_run(team, FN(run_backward), j);
    if (m->bot)
        BOTTOM_BACKWARD(m->bot, j->bs, j->p + m->bottom_p, j->g + m->bottom_p, j->x, B, j->dx);
    else if (j->dx)
        for (size_t r = 1; r < n && r < T; r++) {
            const REAL *part = j->dxp + (r - 1) * B * D;
            for (size_t i = 0; i < B * D; i++)
                j->dx[i] += part[i];
        }
    for (size_t i = 0; i < B; i++)
        dz[i] = dlg[i * T];
    BIAS_BACKWARD(m->bias, bs, j->p + m->bias_p, j->g + m->bias_p, xb, B, dz, dxb);
    return total;
}
