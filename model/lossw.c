/*
 * lossw.c - the min-norm weights and the logit-gradient Gram matrix of
 * the pareto loss weighting. See lossw.h for the method.
 */
#include "model/lossw.h"

#include <math.h>
#include <string.h>

/*
 * Solve the n x n system A y = b (n <= HEADS_MAX_LOSS + 1) by Gaussian
 * elimination with partial pivoting. Returns -1 if A is singular (a pivot
 * below tol of the matrix's scale).
 */
static int solve(int n, double A[][HEADS_MAX_LOSS + 1], double *b, double *y, double tol)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r][c]) > fabs(A[piv][c]))
                piv = r;
        if (!(fabs(A[piv][c]) > tol))
            return -1;
        if (piv != c) {
            for (int k = 0; k < n; k++) {
                double t = A[c][k];
                A[c][k] = A[piv][k];
                A[piv][k] = t;
            }
            double t = b[c];
            b[c] = b[piv];
            b[piv] = t;
        }
        for (int r = c + 1; r < n; r++) {
            double f = A[r][c] / A[c][c];
            for (int k = c; k < n; k++)
                A[r][k] -= f * A[c][k];
            b[r] -= f * b[c];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double s = b[r];
        for (int k = r + 1; k < n; k++)
            s -= A[r][k] * y[k];
        y[r] = s / A[r][r];
    }
    return 0;
}

/* u^T G u */
static double quad(int K, const double *G, const double *u)
{
    double q = 0.0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            q += u[i] * G[i * K + j] * u[j];
    return q;
}

int lossw_min_norm(int K, const double *G, double c, double *u)
{
    double r, best = INFINITY, scale = 0.0, Gc[HEADS_MAX_LOSS];

    if (K < 1 || K > HEADS_MAX_LOSS || !(c >= 0.0) || c * K > 1.0 + 1e-12) {
        for (int k = 0; k < K && k < HEADS_MAX_LOSS; k++)
            u[k] = 1.0 / K;
        return -1;
    }
    r = 1.0 - c * K;
    for (int i = 0; i < K; i++) {
        Gc[i] = 0.0;
        for (int j = 0; j < K; j++) {
            Gc[i] += G[i * K + j] * c;
            scale = fmax(scale, fabs(G[i * K + j]));
        }
    }
    /* v on the simplex minimises r^2 v^T G v + 2 r (G c)^T v; for each
     * support S: 2 r^2 G_SS v_S + 2 r (Gc)_S = lambda 1, sum v_S = 1. */
    for (int S = 1; S < (1 << K); S++) {
        double A[HEADS_MAX_LOSS + 1][HEADS_MAX_LOSS + 1], b[HEADS_MAX_LOSS + 1];
        double y[HEADS_MAX_LOSS + 1], v[HEADS_MAX_LOSS], cand[HEADS_MAX_LOSS];
        int idx[HEADS_MAX_LOSS], n = 0, ok = 1;

        for (int k = 0; k < K; k++)
            if (S & (1 << k))
                idx[n++] = k;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++)
                A[i][j] = 2.0 * r * r * G[idx[i] * K + idx[j]];
            A[i][n] = -1.0; /* -lambda */
            b[i] = -2.0 * r * Gc[idx[i]];
        }
        for (int j = 0; j < n; j++)
            A[n][j] = 1.0;
        A[n][n] = 0.0;
        b[n] = 1.0;
        if (solve(n + 1, A, b, y, 1e-13 * (scale > 0 ? scale : 1.0)) != 0)
            continue;
        memset(v, 0, sizeof(v));
        for (int i = 0; i < n; i++) {
            if (!(y[i] >= -1e-12)) /* also refuses nan */
                ok = 0;
            v[idx[i]] = y[i] > 0 ? y[i] : 0.0;
        }
        if (!ok)
            continue;
        for (int k = 0; k < K; k++)
            cand[k] = c + r * v[k];
        double q = quad(K, G, cand);
        if (q < best) {
            best = q;
            memcpy(u, cand, (size_t)K * sizeof(double));
        }
    }
    if (!isfinite(best)) { /* not reached: a vertex always solves */
        for (int k = 0; k < K; k++)
            u[k] = 1.0 / K;
        return -1;
    }
    return 0;
}
