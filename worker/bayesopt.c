/*
 * bayesopt.c - Gaussian-process Bayesian optimization with expected
 * improvement. See bayesopt.h for the model and its choices.
 */
#include "worker/bayesopt.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

/* Hyperparameter grid (unit cube, standardised observations). */
static const double grid_len[] = {0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.45, 0.7, 1.0, 1.5};
static const double grid_sf2[] = {0.25, 1.0, 4.0};
#define NLEN (sizeof(grid_len) / sizeof(grid_len[0]))
#define NSF2 (sizeof(grid_sf2) / sizeof(grid_sf2[0]))

#define JITTER0 1e-10
#define MIN_DIST2 1e-12 /* candidates nearer than 1e-6 to a point are skipped */

struct bo {
    bo_opts_t o;
    size_t n;      /* points */
    double *u;     /* n x dim, unit cube */
    double *y;     /* n, objective units */
    double *ys;    /* n, standardised */
    double *L;     /* n x n Cholesky factor (lower) of the chosen fit */
    double *Lt;    /* n x n scratch factor while the grid is tried */
    double *alpha; /* n */
    double *tmp;   /* n */
    double ymean;  /* standardisation */
    double ysd;    /*   of y */
    double len;    /* chosen length scale */
    double sf2;    /* chosen signal variance */
    double noise;  /* noise + jitter of the chosen fit */
    double jitter; /* jitter of the chosen fit */
    size_t fitted; /* n at the last fit (0: none) */
    uint64_t rng;  /* candidate stream */
};

bo_t *bo_new(const bo_opts_t *o, errbuf_t *eb)
{
    bo_t *b;
    size_t N = BO_MAX_POINTS;

    if (o->dim < 1 || o->dim > BO_MAX_DIM) {
        errbuf_set(eb, ERR_INVAL, "bayesopt: %d parameters, want 1..%d", o->dim, BO_MAX_DIM);
        return NULL;
    }
    for (int d = 0; d < o->dim; d++)
        if (!(o->lo[d] < o->hi[d]) || !isfinite(o->lo[d]) || !isfinite(o->hi[d])) {
            errbuf_set(eb, ERR_INVAL, "bayesopt: parameter %d: box [%g, %g] is empty", d, o->lo[d],
                       o->hi[d]);
            return NULL;
        }
    if (!(o->noise >= 0) || o->ncand < 0) {
        errbuf_set(eb, ERR_INVAL, "bayesopt: noise %g / candidates %d must be >= 0", o->noise,
                   o->ncand);
        return NULL;
    }
    b = calloc(1, sizeof(*b));
    if (b) {
        b->o = *o;
        if (!b->o.ncand)
            b->o.ncand = 2000;
        b->u = malloc(N * (size_t)o->dim * sizeof(double));
        b->y = malloc(N * sizeof(double));
        b->ys = malloc(N * sizeof(double));
        b->L = malloc(N * N * sizeof(double));
        b->Lt = malloc(N * N * sizeof(double));
        b->alpha = malloc(N * sizeof(double));
        b->tmp = malloc(N * sizeof(double));
        b->rng = o->seed ^ UINT64_C(0x626179736f707431); /* "bayesopt1" */
    }
    if (!b || !b->u || !b->y || !b->ys || !b->L || !b->Lt || !b->alpha || !b->tmp) {
        bo_destroy(&b);
        errbuf_set(eb, ERR_NOMEM, "bayesopt: out of memory for %d points", BO_MAX_POINTS);
        return NULL;
    }
    return b;
}

void bo_destroy(bo_t **pb)
{
    bo_t *b = pb ? *pb : NULL;

    if (!b)
        return;
    free(b->u);
    free(b->y);
    free(b->ys);
    free(b->L);
    free(b->Lt);
    free(b->alpha);
    free(b->tmp);
    free(b);
    *pb = NULL;
}

static void to_unit(const bo_t *b, const double *x, double *u)
{
    for (int d = 0; d < b->o.dim; d++)
        u[d] = (x[d] - b->o.lo[d]) / (b->o.hi[d] - b->o.lo[d]);
}

static void from_unit(const bo_t *b, const double *u, double *x)
{
    for (int d = 0; d < b->o.dim; d++)
        x[d] = b->o.lo[d] + u[d] * (b->o.hi[d] - b->o.lo[d]);
}

static double dist2(const double *a, const double *c, int dim)
{
    double s = 0;

    for (int d = 0; d < dim; d++)
        s += (a[d] - c[d]) * (a[d] - c[d]);
    return s;
}

static double kern(double d2, double len, double sf2)
{
    return sf2 * exp(-d2 / (2 * len * len));
}

int bo_add(bo_t *b, const double *x, double y)
{
    double *u;

    if (b->n >= BO_MAX_POINTS)
        return ERR_TOOBIG;
    if (!isfinite(y))
        return ERR_INVAL;
    u = b->u + b->n * (size_t)b->o.dim;
    to_unit(b, x, u);
    for (int d = 0; d < b->o.dim; d++)
        if (!(u[d] >= -1e-12 && u[d] <= 1 + 1e-12))
            return ERR_INVAL;
    b->y[b->n++] = y;
    return 0;
}

/* Cholesky of K(len, sf2) + noise I into L (n x n lower, row-major).
 * Returns 0, or -1 when the matrix is not positive definite. */
static int cholesky(const bo_t *b, double len, double sf2, double noise, double *L)
{
    size_t n = b->n;
    int dim = b->o.dim;

    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j <= i; j++) {
            double s = kern(dist2(b->u + i * (size_t)dim, b->u + j * (size_t)dim, dim), len, sf2);
            if (i == j)
                s += noise;
            for (size_t k = 0; k < j; k++)
                s -= L[i * n + k] * L[j * n + k];
            if (i == j) {
                if (!(s > 0))
                    return -1;
                L[i * n + i] = sqrt(s);
            } else
                L[i * n + j] = s / L[j * n + j];
        }
    }
    return 0;
}

/* Solve L z = v in place (forward substitution). */
static void solve_lower(const double *L, size_t n, double *v)
{
    for (size_t i = 0; i < n; i++) {
        double s = v[i];
        for (size_t k = 0; k < i; k++)
            s -= L[i * n + k] * v[k];
        v[i] = s / L[i * n + i];
    }
}

/* Solve L^T z = v in place (back substitution). */
static void solve_upper(const double *L, size_t n, double *v)
{
    for (size_t i = n; i-- > 0;) {
        double s = v[i];
        for (size_t k = i + 1; k < n; k++)
            s -= L[k * n + i] * v[k];
        v[i] = s / L[i * n + i];
    }
}

/* Factorise with the smallest jitter that works into L; *noise gets the
 * total diagonal added. Returns 0 or -1 (never positive definite). */
static int factor(const bo_t *b, double len, double sf2, double *L, double *noise, double *jitter)
{
    for (double j = JITTER0; j < 1e-1; j *= 10) {
        if (cholesky(b, len, sf2, b->o.noise + j, L) == 0) {
            *noise = b->o.noise + j;
            *jitter = j;
            return 0;
        }
    }
    return -1;
}

int bo_fit(bo_t *b)
{
    size_t n = b->n;
    double best = -INFINITY, mean = 0, var = 0;

    if (n == 0)
        return ERR_INVAL;
    for (size_t i = 0; i < n; i++)
        mean += b->y[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        var += (b->y[i] - mean) * (b->y[i] - mean);
    var = n > 1 ? var / (double)(n - 1) : 0;
    b->ymean = mean;
    b->ysd = var > 0 ? sqrt(var) : 1.0;
    for (size_t i = 0; i < n; i++)
        b->ys[i] = (b->y[i] - mean) / b->ysd;

    for (size_t a = 0; a < NLEN; a++)
        for (size_t s = 0; s < NSF2; s++) {
            double noise, jitter, lml = 0;
            if (factor(b, grid_len[a], grid_sf2[s], b->Lt, &noise, &jitter) != 0)
                continue;
            memcpy(b->tmp, b->ys, n * sizeof(double));
            solve_lower(b->Lt, n, b->tmp); /* tmp = L^-1 y: y^T K^-1 y = |tmp|^2 */
            for (size_t i = 0; i < n; i++)
                lml -= 0.5 * b->tmp[i] * b->tmp[i] + log(b->Lt[i * n + i]);
            lml -= 0.5 * (double)n * log(2 * M_PI);
            if (lml > best) {
                best = lml;
                b->len = grid_len[a];
                b->sf2 = grid_sf2[s];
                b->noise = noise;
                b->jitter = jitter;
                double *t = b->L;
                b->L = b->Lt;
                b->Lt = t;
            }
        }
    if (best == -INFINITY)
        return ERR_INVAL; /* not even the largest jitter factorised: cannot happen for n >= 1 */
    memcpy(b->alpha, b->ys, n * sizeof(double));
    solve_lower(b->L, n, b->alpha);
    solve_upper(b->L, n, b->alpha);
    b->fitted = n;
    return 0;
}

/* Posterior mean and variance at unit point u, standardised units. */
static double post(const bo_t *b, const double *u, double *var, double *scratch)
{
    size_t n = b->fitted;
    double mu = 0, v = b->sf2;

    for (size_t i = 0; i < n; i++) {
        scratch[i] = kern(dist2(u, b->u + i * (size_t)b->o.dim, b->o.dim), b->len, b->sf2);
        mu += scratch[i] * b->alpha[i];
    }
    solve_lower(b->L, n, scratch);
    for (size_t i = 0; i < n; i++)
        v -= scratch[i] * scratch[i];
    /* what is left at the level of the jitter is rounding, not uncertainty */
    *var = v > 10 * b->jitter ? v : 0;
    return mu;
}

double bo_mean(const bo_t *b, const double *x, double *var)
{
    double u[BO_MAX_DIM], v, mu;

    to_unit(b, x, u);
    mu = post(b, u, &v, b->tmp);
    if (var)
        *var = v * b->ysd * b->ysd;
    return b->ymean + mu * b->ysd;
}

/* EI at unit point u in standardised units over standardised best fb. */
static double ei_unit(const bo_t *b, const double *u, double fb)
{
    double v, mu = post(b, u, &v, b->tmp), sd = sqrt(v);

    if (sd <= 0) /* a known value: it improves by what it is, rounding aside */
        return mu - fb > 1e-6 ? mu - fb : 0;
    double z = (mu - fb) / sd;
    double cdf = 0.5 * erfc(-z / M_SQRT2);
    double pdf = exp(-0.5 * z * z) / sqrt(2 * M_PI);
    double ei = (mu - fb) * cdf + sd * pdf;
    return ei > 0 ? ei : 0;
}

static double best_std(const bo_t *b)
{
    double fb = -INFINITY;

    for (size_t i = 0; i < b->fitted; i++)
        if (b->ys[i] > fb)
            fb = b->ys[i];
    return fb;
}

double bo_ei(const bo_t *b, const double *x)
{
    double u[BO_MAX_DIM];

    to_unit(b, x, u);
    return ei_unit(b, u, best_std(b)) * b->ysd;
}

static double unif(bo_t *b)
{
    return rng_unit(rng_splitmix64(&b->rng));
}

/* A standard normal draw (Box-Muller). */
static double gauss(bo_t *b)
{
    double u1 = unif(b), u2 = unif(b);

    return sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2);
}

static int near_point(const bo_t *b, const double *u)
{
    for (size_t i = 0; i < b->n; i++)
        if (dist2(u, b->u + i * (size_t)b->o.dim, b->o.dim) < MIN_DIST2)
            return 1;
    return 0;
}

int bo_suggest(bo_t *b, double *x)
{
    int dim = b->o.dim;
    double u[BO_MAX_DIM], bu[BO_MAX_DIM], best = -1, fb;
    size_t top[3] = {0, 0, 0};
    int ntop = 0;

    if (b->n == 0) {
        for (int d = 0; d < dim; d++)
            u[d] = unif(b);
        from_unit(b, u, x);
        return 0;
    }
    if (b->fitted != b->n && bo_fit(b) != 0)
        return ERR_INVAL;
    fb = best_std(b);
    /* the (up to) three best points seed the local candidates */
    for (; ntop < 3 && (size_t)ntop < b->n; ntop++) {
        size_t bi = SIZE_MAX;
        for (size_t i = 0; i < b->n; i++) {
            int taken = 0;
            for (int k = 0; k < ntop; k++)
                taken |= top[k] == i;
            if (!taken && (bi == SIZE_MAX || b->y[i] > b->y[bi]))
                bi = i;
        }
        top[ntop] = bi;
    }
    for (int d = 0; d < dim; d++)
        bu[d] = unif(b);
    for (int c = 0; c < 2 * b->o.ncand; c++) {
        if (c < b->o.ncand) {
            for (int d = 0; d < dim; d++)
                u[d] = unif(b);
        } else {
            const double *s = b->u + top[c % ntop] * (size_t)dim;
            for (int d = 0; d < dim; d++) {
                u[d] = s[d] + 0.05 * gauss(b);
                u[d] = u[d] < 0 ? 0 : (u[d] > 1 ? 1 : u[d]);
            }
        }
        if (near_point(b, u))
            continue;
        double e = ei_unit(b, u, fb);
        if (e > best) {
            best = e;
            memcpy(bu, u, (size_t)dim * sizeof(double));
        }
    }
    from_unit(b, bu, x);
    return 0;
}

void bo_hyper(const bo_t *b, double *len, double *sf2)
{
    *len = b->len;
    *sf2 = b->sf2;
}

size_t bo_count(const bo_t *b)
{
    return b->n;
}

double bo_best(const bo_t *b, double *best_x)
{
    size_t bi = 0;

    if (b->n == 0)
        return -INFINITY;
    for (size_t i = 1; i < b->n; i++)
        if (b->y[i] > b->y[bi])
            bi = i;
    if (best_x)
        from_unit(b, b->u + bi * (size_t)b->o.dim, best_x);
    return b->y[bi];
}

int bo_maximize(bo_t *b, bo_fn *f, void *ctx, int ninit, int neval, double *best_x, double *best_y)
{
    double x[BO_MAX_DIM], y;
    int rc;

    if (ninit < 1 || ninit > neval || neval > BO_MAX_POINTS)
        return ERR_INVAL;
    for (int e = 0; e < neval; e++) {
        if (e < ninit) {
            double u[BO_MAX_DIM];
            for (int d = 0; d < b->o.dim; d++)
                u[d] = unif(b);
            from_unit(b, u, x);
        } else if ((rc = bo_suggest(b, x)) != 0)
            return rc;
        if ((rc = f(ctx, x, &y)) != 0)
            return rc;
        if ((rc = bo_add(b, x, y)) != 0)
            return rc;
    }
    *best_y = bo_best(b, best_x);
    return 0;
}
