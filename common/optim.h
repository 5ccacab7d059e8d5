/*
 * optim.h - optimizers for embedding rows and dense weights.
 *
 * Row optimizers (Adagrad, SGD, Adam, FTRL) keep their state in a float
 * block stored right after the row's embedding, so a row and its optimizer
 * state are one record: the worker's in-process table and the parameter
 * server apply exactly the same code. Dense optimizers (Adam, Adagrad) run
 * over one flat block of weights.
 *
 * NOTES ON THE DESIGN
 *   State per row of dim d (floats):
 *     sgd      0
 *     adagrad  d          accumulated squared gradients
 *     adam     2d + 1     m[d], v[d], step count t
 *     ftrl     2d         z[d], n[d] (the weights are derived from z and n
 *                         after every step and also kept in the embedding)
 *   A new row's embedding is a deterministic pseudo-normal(0, init_std)
 *   function of its key (splitmix64 stream seeded by the key), so every
 *   process creating the row creates the same one.
 *
 * Thread-safety: pure functions over caller-owned memory.
 */
#ifndef FUNNEL_OPTIM_H
#define FUNNEL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* Order matches the conf enums "adagrad|sgd|adam|ftrl" and "adam|adagrad". */
enum { OPTIM_ADAGRAD = 0, OPTIM_SGD = 1, OPTIM_ADAM = 2, OPTIM_FTRL = 3 };

typedef struct optim {
    int kind;        /* OPTIM_* */
    float lr;        /* learning rate (FTRL: alpha) */
    float eps;       /* Adagrad / Adam epsilon */
    float beta1;     /* Adam */
    float beta2;     /* Adam */
    float ftrl_beta; /* FTRL */
    float l1, l2;    /* FTRL */
    float init_std;  /* rows: std of the initial embedding */
} optim_t;

/* Floats of state per row (or per dense weight block of n: see below). */
size_t optim_state_len(const optim_t *o, size_t dim);

/* Name of the kind ("adagrad", ...). */
const char *optim_name(int kind);

/* Initialize a new row for key: embedding w[dim] and state[optim_state_len]. */
void optim_row_init(const optim_t *o, uint64_t key, float *w, float *state, size_t dim);

/* Apply one gradient step g[dim] to row w with its state. */
void optim_row_update(const optim_t *o, float *w, float *state, const float *g, size_t dim);

/*
 * Dense block of n weights: state holds optim_state_len(o, n) - for Adam
 * 2n (m, v; the step t is passed in, starting at 1), for Adagrad n.
 * Only OPTIM_ADAM and OPTIM_ADAGRAD are valid here.
 */
size_t optim_dense_state_len(const optim_t *o, size_t n);
void optim_dense_update(const optim_t *o, float *w, float *state, const float *g, size_t n,
                        int64_t t);

#endif
