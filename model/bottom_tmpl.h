/*
 * bottom_tmpl.h - the bottoms' forward and backward, written once for both
 * precisions. bottom.c includes this file twice: with REAL = float and the
 * OpenBLAS kernels, and with REAL = double and the plain-loop kernels (the
 * gradient checks), so the double check exercises the code that trains.
 *
 * The includer defines REAL, FN(name), EXP (expf / exp), DENSE_FORWARD and
 * DENSE_BACKWARD, and provides bottom_t (the shape table).
 *
 * Gate math per row i, probabilities g = softmax(z), z = in W^T + b,
 * mixture o = sum_c g_c e_c (e_c the chosen experts' outputs):
 *   d g_c = <d o, e_c>,  d e_c += g_c d o,
 *   d z_c = g_c (d g_c - sum_c' g_c' d g_c').
 */

/* The input of group grp at level l: x at level 0, else the mixture of
 * the group's gate one level down. */
static const REAL *FN(group_in)(const bottom_t *bt, const REAL *s, const REAL *x, int l, int grp,
                                size_t B)
{
    const blevel_t *lv;

    if (l == 0)
        return x;
    lv = &bt->level[l - 1];
    return s + B * lv->gate[lv->gate_of[grp]].ocol;
}

/* Its gradient: dx at level 0 (may be NULL), else the gate's d mixture. */
static REAL *FN(group_din)(const bottom_t *bt, REAL *s, REAL *dx, int l, int grp, size_t B)
{
    const blevel_t *lv;

    if (l == 0)
        return dx;
    lv = &bt->level[l - 1];
    return s + B * lv->gate[lv->gate_of[grp]].dcol;
}

/* One step's bottom work shared by a team (see bottom.h's threads note). */
typedef struct FN(bjob) {
    const bottom_t *bt;
    REAL *s;
    const REAL *p;
    REAL *g;
    const REAL *x;
    size_t B;
    REAL *dx;
    REAL *mem; /* member r: mem + r * bottom_member_len(B) */
    int l;     /* the level being run */
} FN(bjob_t);

/* Forward of the level's experts e = r, r + n, ... */
static void FN(run_experts_forward)(void *arg, int r, int n)
{
    FN(bjob_t) *j = arg;
    const bottom_t *bt = j->bt;
    const blevel_t *lv = &bt->level[j->l];
    const size_t B = j->B;

    for (int e = r; e < lv->nexp; e += n) {
        const bexpert_t *ex = &lv->exp[e];
        const REAL *in = FN(group_in)(bt, j->s, j->x, j->l, ex->group, B);
        for (int k = 0; k < bt->nl; k++) {
            const blayer_t *ly = &ex->layer[k];
            REAL *out = j->s + B * ly->col;
            DENSE_FORWARD(out, in, j->p + ly->w, j->p + ly->b, B, ly->in, ly->out, DENSE_RELU);
            in = out;
        }
    }
}

/* Forward of the level's gates gi = r, r + n, ...: probabilities, mixture. */
static void FN(run_gates_forward)(void *arg, int r, int n)
{
    FN(bjob_t) *j = arg;
    const bottom_t *bt = j->bt;
    const blevel_t *lv = &bt->level[j->l];
    const size_t H = bt->H, B = j->B;
    REAL *s = j->s;

    for (int gi = r; gi < lv->ngate; gi += n) {
        const bgate_t *gt = &lv->gate[gi];
        const REAL *in = FN(group_in)(bt, s, j->x, j->l, gt->group, B);
        REAL *g = s + B * gt->pcol, *o = s + B * gt->ocol;
        const size_t nc = gt->nc;
        if (nc > 1) {
            DENSE_FORWARD(g, in, j->p + gt->w, j->p + gt->b, B, lv->in, nc, DENSE_LINEAR);
            for (size_t i = 0; i < B; i++) {
                REAL *gr = g + i * nc, mx = gr[0], sum = 0;
                for (size_t c = 1; c < nc; c++)
                    mx = gr[c] > mx ? gr[c] : mx;
                for (size_t c = 0; c < nc; c++)
                    sum += gr[c] = EXP(gr[c] - mx);
                for (size_t c = 0; c < nc; c++)
                    gr[c] /= sum;
            }
        } else {
            for (size_t i = 0; i < B; i++)
                g[i] = 1;
        }
        memset(o, 0, B * H * sizeof(REAL));
        for (size_t c = 0; c < nc; c++) {
            const bexpert_t *ex = &lv->exp[gate_expert(bt, gt, c)];
            const REAL *eo = s + B * ex->layer[bt->nl - 1].col;
            for (size_t i = 0; i < B; i++) {
                const REAL gc = g[i * nc + c];
                for (size_t j2 = 0; j2 < H; j2++)
                    o[i * H + j2] += gc * eo[i * H + j2];
            }
        }
    }
}

static void FN(forward)(const bottom_t *bt, team_t *team, REAL *s, const REAL *p, const REAL *x,
                        size_t B)
{
    FN(bjob_t) j = {.bt = bt, .s = s, .p = p, .x = x, .B = B};

    for (j.l = 0; j.l < bt->L; j.l++) {
        team_run(team, FN(run_experts_forward), &j);
        team_run(team, FN(run_gates_forward), &j);
    }
}

/* Backward of one expert: d output at dcol (masked in place), its input
 * gradient added into din (NULL: skipped); pp: 2 * B * maxw of ping-pong. */
static void FN(expert_backward)(const bottom_t *bt, const bexpert_t *ex, REAL *s, const REAL *p,
                                REAL *g, const REAL *in0, REAL *din, size_t B, REAL *pp)
{
    REAL *dout = s + B * ex->dcol;
    REAL *buf[2] = {pp, pp + B * bt->maxw};
    int nb = 0;

    for (int k = bt->nl - 1; k >= 0; k--) {
        const blayer_t *ly = &ex->layer[k];
        const REAL *in = k ? s + B * ex->layer[k - 1].col : in0;
        REAL *next = k ? buf[nb] : din;
        DENSE_BACKWARD(next, g + ly->w, g + ly->b, dout, in, p + ly->w, s + B * ly->col, B, ly->in,
                       ly->out, DENSE_RELU, k ? 0 : 1);
        dout = next;
        nb ^= 1;
    }
}

/* Backward of one gate: d mixture -> d experts (added) and, through the
 * softmax, its own parameters and its input gradient (added into din). */
static void FN(gate_backward)(const bottom_t *bt, const blevel_t *lv, const bgate_t *gt, REAL *s,
                              const REAL *p, REAL *g, const REAL *in, REAL *din, size_t B)
{
    const size_t H = bt->H, nc = gt->nc;
    const REAL *pr = s + B * gt->pcol, *dout = s + B * gt->dcol;
    REAL *dz = s + B * gt->zcol;

    for (size_t c = 0; c < nc; c++) {
        const bexpert_t *ex = &lv->exp[gate_expert(bt, gt, c)];
        const REAL *eo = s + B * ex->layer[bt->nl - 1].col;
        REAL *de = s + B * ex->dcol;
        for (size_t i = 0; i < B; i++) {
            const REAL gc = pr[i * nc + c];
            REAL dg = 0;
            for (size_t j = 0; j < H; j++) {
                dg += dout[i * H + j] * eo[i * H + j];
                de[i * H + j] += gc * dout[i * H + j];
            }
            dz[i * nc + c] = dg;
        }
    }
    if (nc < 2)
        return;
    for (size_t i = 0; i < B; i++) {
        REAL dot = 0;
        for (size_t c = 0; c < nc; c++)
            dot += pr[i * nc + c] * dz[i * nc + c];
        for (size_t c = 0; c < nc; c++)
            dz[i * nc + c] = pr[i * nc + c] * (dz[i * nc + c] - dot);
    }
    DENSE_BACKWARD(din, g + gt->w, g + gt->b, dz, in, p + gt->w, pr, B, lv->in, nc, DENSE_LINEAR,
                   1);
}

/*
 * Backward of the level's experts e = r, r + n, ... Member 0 adds its
 * experts' input gradients into their group's din, member r > 0 into its
 * own partial of that din (zeroed at first use), summed by the caller.
 */
static void FN(run_experts_backward)(void *arg, int r, int n)
{
    FN(bjob_t) *j = arg;
    const bottom_t *bt = j->bt;
    const blevel_t *lv = &bt->level[j->l];
    const size_t B = j->B, win = lv->in;
    REAL *mem = j->mem + (size_t)r * bottom_member_len(bt, B);
    uint64_t zeroed = 0;

    for (int e = r; e < lv->nexp; e += n) {
        const bexpert_t *ex = &lv->exp[e];
        const int slot = j->l ? ex->group : 0;
        REAL *din = FN(group_din)(bt, j->s, j->dx, j->l, ex->group, B);
        if (din && r > 0) {
            din = mem + 2 * B * bt->maxw + (size_t)slot * B * win;
            if (!(zeroed >> slot & 1))
                memset(din, 0, B * win * sizeof(REAL));
            zeroed |= (uint64_t)1 << slot;
        }
        FN(expert_backward)
        (bt, ex, j->s, j->p, j->g, FN(group_in)(bt, j->s, j->x, j->l, ex->group, B), din, B, mem);
    }
}

static void FN(backward)(const bottom_t *bt, team_t *team, REAL *s, const REAL *p, REAL *g,
                         const REAL *x, size_t B, REAL *dx, REAL *mem)
{
    const size_t H = bt->H;
    const int n = team_size(team);
    FN(bjob_t) j = {.bt = bt, .s = s, .p = p, .g = g, .x = x, .B = B, .dx = dx, .mem = mem};

    if (bt->tied) { /* every tower read the shared mixture: their gradients add up */
        const blevel_t *lv = &bt->level[bt->L - 1];
        REAL *d = s + B * lv->gate[lv->gate_of[bt->T]].dcol;
        memcpy(d, s + B * bt->tgcol, B * H * sizeof(REAL));
        for (int t = 1; t < bt->T; t++) {
            const REAL *dt = s + B * (bt->tgcol + (size_t)t * H);
            for (size_t i = 0; i < B * H; i++)
                d[i] += dt[i];
        }
    }
    for (int l = bt->L - 1; l >= 0; l--) {
        const blevel_t *lv = &bt->level[l];
        for (int e = 0; e < lv->nexp; e++)
            memset(s + B * lv->exp[e].dcol, 0, B * H * sizeof(REAL));
        if (l > 0) {
            const blevel_t *down = &bt->level[l - 1];
            for (int gi = 0; gi < down->ngate; gi++)
                memset(s + B * down->gate[gi].dcol, 0, B * H * sizeof(REAL));
        } else if (dx) {
            memset(dx, 0, B * bt->D * sizeof(REAL));
        }
        for (int gi = 0; gi < lv->ngate; gi++) {
            const bgate_t *gt = &lv->gate[gi];
            FN(gate_backward)
            (bt, lv, gt, s, p, g, FN(group_in)(bt, s, x, l, gt->group, B),
             FN(group_din)(bt, s, dx, l, gt->group, B), B);
        }
        j.l = l;
        team_run(team, FN(run_experts_backward), &j);
        /* the members' partials, in member order */
        for (int r = 1; r < n; r++) {
            const REAL *part = mem + (size_t)r * bottom_member_len(bt, B) + 2 * B * bt->maxw;
            uint64_t seen = 0;
            for (int e = r; e < lv->nexp; e += n) {
                const int grp = lv->exp[e].group, slot = l ? grp : 0;
                REAL *din = FN(group_din)(bt, s, dx, l, grp, B);
                if (!din || (seen >> slot & 1))
                    continue;
                seen |= (uint64_t)1 << slot;
                for (size_t i = 0; i < B * lv->in; i++)
                    din[i] += part[(size_t)slot * B * lv->in + i];
            }
        }
    }
}
