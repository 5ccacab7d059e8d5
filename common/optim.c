/*
 * optim.c - the row optimizers (Adagrad, SGD, Adam, FTRL-proximal), the dense
 * block optimizers (Adam, Adagrad, SGD) and the deterministic row init.
 * See optim.h for the state layout.
 *
 * Not here: where rows live (the embedding table), when they are created
 * (admission) and which learning rate a role uses (model_conf).
 *
 * NOTES ON THE DESIGN
 *   Update rules, per coordinate, g the gradient:
 *     sgd      w -= lr * g
 *     adagrad  acc += g^2;  w -= lr * g / (sqrt(acc) + eps)    (acc starts at 0)
 *     adam     t += 1; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *              w -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *              - PyTorch's torch.optim.Adam (no weight decay, no amsgrad),
 *              with eps added after the bias correction of v.
 *     ftrl     FTRL-proximal (McMahan et al., KDD 2013, Algorithm 1), alpha = lr:
 *              sigma = (sqrt(n + g^2) - sqrt(n)) / alpha
 *              z += g - sigma * w;  n += g^2
 *              w = 0                                    if |z| <= l1
 *                = -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2)  otherwise
 *   Row Adam keeps its step count t as the last state float: a float counts
 *   exactly to 2^24 updates of one row, after which t stops growing; by then
 *   both bias corrections are 1 to float precision, so nothing changes.
 *   Dense Adam gets t from the caller (the model counts its steps). The
 *   dense update also accepts OPTIM_SGD (no state), beyond optim.h's
 *   contract; FTRL is rows only.
 *
 *   FTRL init. The paper starts from z = n = 0, i.e. w = 0. We want every
 *   optimizer to start from the same random embedding w0, so z is chosen to
 *   make the closed form give w0 when n = 0:
 *       z0 = -(beta/alpha + l2) * w0 - sign(w0) * l1
 *   Then |z0| = (beta/alpha + l2)|w0| + l1 > l1 for w0 != 0, and
 *   -(z0 - sign(z0) l1) / (beta/alpha + l2) = w0. (w0 == 0 gives z0 = 0 and
 *   w = 0, also consistent.) If beta/alpha + l2 == 0 (beta = l2 = 0) the
 *   closed form is undefined at n = 0; z0 = 0 then and the first update
 *   switches to the closed form. An alpha of 0 means "no learning": the
 *   update leaves the row unchanged instead of dividing by zero.
 *
 *   Row init: a splitmix64 stream seeded with the key gives 64-bit words;
 *   each pair (a, b) becomes u1 = ((a >> 11) + 1) 2^-53 in (0, 1] and
 *   u2 = (b >> 11) 2^-53 in [0, 1), and Box-Muller gives two normals
 *   sqrt(-2 ln u1) cos(2 pi u2) and sqrt(-2 ln u1) sin(2 pi u2), in this
 *   order, computed in double and scaled by init_std. Column j of the row is
 *   the j-th normal of the stream. The state starts at zero (Adagrad acc,
 *   Adam m, v, t; FTRL n) except FTRL's z, see above.
 *
 * Thread-safety: pure functions over caller-owned memory.
 */
#include "common/optim.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "common/rng.h"

size_t optim_state_len(const optim_t *o, size_t dim)
{
    switch (o->kind) {
    case OPTIM_SGD: return 0;
    case OPTIM_ADAGRAD: return dim;
    case OPTIM_ADAM: return 2 * dim + 1;
    case OPTIM_FTRL: return 2 * dim;
    }
    assert(!"unknown optimizer kind");
    return 0;
}

const char *optim_name(int kind)
{
    switch (kind) {
    case OPTIM_ADAGRAD: return "adagrad";
    case OPTIM_SGD: return "sgd";
    case OPTIM_ADAM: return "adam";
    case OPTIM_FTRL: return "ftrl";
    }
    return "unknown";
}

/* w[dim] = init_std * the first dim normals of the stream seeded by key. */
static void normal_fill(uint64_t key, float std, float *w, size_t dim)
{
    const double two_pi = 6.283185307179586476925286766559;
    uint64_t s = key;

    for (size_t j = 0; j < dim; j += 2) {
        double u1 = (double)((rng_splitmix64(&s) >> 11) + 1) * 0x1.0p-53;
        double u2 = rng_unit(rng_splitmix64(&s));
        double r = sqrt(-2.0 * log(u1));
        w[j] = (float)(std * r * cos(two_pi * u2));
        if (j + 1 < dim)
            w[j + 1] = (float)(std * r * sin(two_pi * u2));
    }
}

/* beta/alpha + l2: FTRL's denominator at n = 0 (0 if alpha is 0). */
static float ftrl_base(const optim_t *o)
{
    return o->lr > 0 ? o->ftrl_beta / o->lr + o->l2 : 0.0f;
}

void optim_row_init(const optim_t *o, uint64_t key, float *w, float *state, size_t dim)
{
    size_t ns = optim_state_len(o, dim);

    normal_fill(key, o->init_std, w, dim);
    if (ns)
        memset(state, 0, ns * sizeof(float));
    if (o->kind == OPTIM_FTRL) {
        float base = ftrl_base(o);
        if (base > 0)
            for (size_t j = 0; j < dim; j++) {
                float sg = w[j] > 0 ? 1.0f : (w[j] < 0 ? -1.0f : 0.0f);
                state[j] = -base * w[j] - sg * o->l1;
            }
    }
}

static void sgd_update(float lr, float *restrict w, const float *restrict g, size_t n)
{
    for (size_t j = 0; j < n; j++)
        w[j] -= lr * g[j];
}

/* The row updates are a shard's arithmetic: built twice, for the baseline
 * and for AVX2 (picked at load time). Both round every operation the same
 * way (IEEE sqrt and division, no FMA in either), so results do not depend
 * on the machine. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define ROW_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define ROW_KERNEL
#endif

ROW_KERNEL
static void adagrad_update(const optim_t *o, float *restrict w, float *restrict acc,
                           const float *restrict g, size_t n)
{
    const float lr = o->lr, eps = o->eps;

    for (size_t j = 0; j < n; j++) {
        acc[j] += g[j] * g[j];
        w[j] -= lr * g[j] / (sqrtf(acc[j]) + eps);
    }
}

/* One Adam step at step count t >= 1 over m[n], v[n]. */
ROW_KERNEL
static void adam_update(const optim_t *o, float *restrict w, float *restrict m, float *restrict v,
                        const float *restrict g, size_t n, double t)
{
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    float step = (float)(o->lr / (1.0 - pow(o->beta1, t)));
    float rbc2 = (float)(1.0 / sqrt(1.0 - pow(o->beta2, t)));

    for (size_t j = 0; j < n; j++) {
        m[j] = b1 * m[j] + (1.0f - b1) * g[j];
        v[j] = b2 * v[j] + (1.0f - b2) * g[j] * g[j];
        w[j] -= step * m[j] / (sqrtf(v[j]) * rbc2 + eps);
    }
}

static void ftrl_update(const optim_t *o, float *w, float *z, float *nn, const float *g, size_t n)
{
    float alpha = o->lr;

    if (!(alpha > 0))
        return;
    for (size_t j = 0; j < n; j++) {
        float n1 = nn[j] + g[j] * g[j];
        float sigma = (sqrtf(n1) - sqrtf(nn[j])) / alpha;
        z[j] += g[j] - sigma * w[j];
        nn[j] = n1;
        if (fabsf(z[j]) <= o->l1) {
            w[j] = 0.0f;
        } else {
            float sg = z[j] > 0 ? 1.0f : -1.0f;
            w[j] = -(z[j] - sg * o->l1) / ((o->ftrl_beta + sqrtf(n1)) / alpha + o->l2);
        }
    }
}

void optim_row_update(const optim_t *o, float *w, float *state, const float *g, size_t dim)
{
    switch (o->kind) {
    case OPTIM_SGD: sgd_update(o->lr, w, g, dim); return;
    case OPTIM_ADAGRAD: adagrad_update(o, w, state, g, dim); return;
    case OPTIM_ADAM: {
        float *t = &state[2 * dim];
        *t += 1.0f;
        adam_update(o, w, state, state + dim, g, dim, (double)*t);
        return;
    }
    case OPTIM_FTRL: ftrl_update(o, w, state, state + dim, g, dim); return;
    }
    assert(!"unknown optimizer kind");
}

size_t optim_dense_state_len(const optim_t *o, size_t n)
{
    switch (o->kind) {
    case OPTIM_SGD: return 0;
    case OPTIM_ADAGRAD: return n;
    case OPTIM_ADAM: return 2 * n;
    }
    assert(!"optimizer kind not valid for dense weights");
    return 0;
}

void optim_dense_update(const optim_t *o, float *w, float *state, const float *g, size_t n,
                        int64_t t)
{
    switch (o->kind) {
    case OPTIM_SGD: sgd_update(o->lr, w, g, n); return;
    case OPTIM_ADAGRAD: adagrad_update(o, w, state, g, n); return;
    case OPTIM_ADAM:
        assert(t >= 1);
        adam_update(o, w, state, state + n, g, n, (double)t);
        return;
    }
    assert(!"optimizer kind not valid for dense weights");
}
