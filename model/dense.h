/*
 * dense.h - the fully connected layer of the towers: forward and backward
 * on oneDNN's or OpenBLAS's sgemm, the same math as plain double loops (the reference the
 * tests compare against and the double-precision path of the gradient
 * checks), and control of OpenBLAS's threads.
 *
 * This is the only module that includes cblas.h.
 *
 * NOTES ON THE DESIGN
 *   Shapes (row-major, PyTorch's nn.Linear layout):
 *     in (B,D), W (H,D), b (H), out (B,H) = act(in W^T + b)
 *   act is ReLU or the identity. Backward needs only the layer's output, not
 *   its pre-activation: out > 0 exactly where the pre-activation is > 0, so
 *   the ReLU mask is read from out and no pre-activation is stored.
 *   Backward overwrites dW and db (one batch = one gradient), and either
 *   overwrites or accumulates into din so that towers sharing one input can
 *   sum their input gradients without a temporary.
 *
 * Thread-safety: the kernels are reentrant (caller-owned memory).
 * dense_threads_set() changes OpenBLAS's process-wide thread count.
 */
#ifndef FUNNEL_DENSE_H
#define FUNNEL_DENSE_H

#include <stddef.h>

enum { DENSE_LINEAR = 0, DENSE_RELU = 1 };
enum { DENSE_FP32 = 0, DENSE_BF16 = 1 };

/*
 * Precision of the float kernels' products (process-wide, like the thread
 * count): DENSE_FP32 (sgemm, dense_gemm_set's library) or DENSE_BF16 (inputs rounded
 * to bfloat16, products on oneDNN's matmul with float32 accumulation and
 * output; products smaller than 16 in a dimension, or any oneDNN failure,
 * stay on sgemm). Parameters, gradients and optimizer state are float32
 * either way. The double reference kernels ignore it.
 */
void dense_precision_set(int p);
int dense_precision_get(void);

/* out (B,H) = act(in (B,D) W^T (D,H) + b (H)); W is (H,D). act: DENSE_*. */
void dense_forward(float *out, const float *in, const float *w, const float *b, size_t B, size_t D,
                   size_t H, int act);

/*
 * Backward of dense_forward, given its in, W and out:
 *   dout (B,H)  gradient w.r.t. out; with DENSE_RELU it is overwritten with
 *               the gradient w.r.t. the pre-activation (zero where out <= 0)
 *   dw (H,D)    = dout^T in                    (overwritten)
 *   db (H)      = sum over rows of dout        (overwritten)
 *   din (B,D)   = dout W, added to din if accum, else stored; NULL: skipped
 */
void dense_backward(float *din, float *dw, float *db, float *dout, const float *in, const float *w,
                    const float *out, size_t B, size_t D, size_t H, int act, int accum);

/*
 * The same two with leading dimensions (row strides, in elements), so a
 * layer can read or write a column block of a wider matrix: in (B,D) rows
 * ldi apart, out (B,H) ldo, dout (B,H) lddo, din (B,D) lddi; W, dw, b, db
 * are contiguous. dense_backward_ld skips dw and db when dw is NULL (and
 * then leaves dout as it is: the caller masked it already), din when NULL.
 */
void dense_forward_ld(float *out, size_t ldo, const float *in, size_t ldi, const float *w,
                      const float *b, size_t B, size_t D, size_t H, int act);
void dense_backward_ld(float *din, size_t lddi, float *dw, float *db, float *dout, size_t lddo,
                       const float *in, size_t ldi, const float *w, const float *out, size_t ldo,
                       size_t B, size_t D, size_t H, int act, int accum);

/* The same operations as plain loops in double precision. */
void dense_forward_ref(double *out, const double *in, const double *w, const double *b, size_t B,
                       size_t D, size_t H, int act);
void dense_backward_ref(double *din, double *dw, double *db, double *dout, const double *in,
                        const double *w, const double *out, size_t B, size_t D, size_t H, int act,
                        int accum);

void dense_forward_ld_ref(double *out, size_t ldo, const double *in, size_t ldi, const double *w,
                          const double *b, size_t B, size_t D, size_t H, int act);
void dense_backward_ld_ref(double *din, size_t lddi, double *dw, double *db, double *dout,
                           size_t lddo, const double *in, size_t ldi, const double *w,
                           const double *out, size_t ldo, size_t B, size_t D, size_t H, int act,
                           int accum);

/*
 * The library of the fp32 products (process-wide): DENSE_GEMM_ONEDNN (the
 * default; oneDNN's sgemm) or DENSE_GEMM_OPENBLAS (OpenBLAS's). Both give
 * the same bits for a given shape whatever the team size (a product's
 * columns are split, never its rows or its sums), not the same bits as
 * each other. dense_gemm_name() is "onednn" or "openblas";
 * dense_onednn_isa() the instruction set oneDNN's kernels use on this CPU
 * ("avx512_core_amx", "avx2", ...), for benchmarks and logs.
 */
enum { DENSE_GEMM_ONEDNN = 0, DENSE_GEMM_OPENBLAS = 1 };
void dense_gemm_set(int lib);
int dense_gemm_get(void);
const char *dense_gemm_name(int lib);
/* DENSE_GEMM_* for "onednn" or "openblas", -1 for any other name. */
int dense_gemm_parse(const char *name);
const char *dense_onednn_isa(void);
/* The fp32 products' kernels now, for logs: "oneDNN sgemm (avx512_core)"
 * or "OpenBLAS SkylakeX". Returns buf. */
const char *dense_kernels(char *buf, size_t len);
/* Set the products' thread count (OpenBLAS's, process-wide, and oneDNN's
 * for every thread's next product; n >= 1) / read it back. */
void dense_threads_set(int n);
int dense_threads_get(void);

/* The BLAS kernel in use: OpenBLAS's core name ("Haswell", "SkylakeX",
 * ...: OPENBLAS_CORETYPE or what it detected), and the most threads its
 * build allows. For benchmarks to say what ran. */
const char *dense_blas_core(void);
int dense_blas_max_threads(void);

/* Choosing OpenBLAS's kernels. OpenBLAS runs its generic SSE3 kernels
 * ("Prescott") on CPU models it does not recognise, whatever their
 * vector units. dense_blas_choose_core(argv), called first thing in
 * main, re-executes the program with OPENBLAS_CORETYPE set to the core
 * the CPU's flags allow (SkylakeX with AVX-512, Haswell with AVX2+FMA)
 * when that happened; it does
 * nothing when OPENBLAS_CORETYPE is already set (the user's choice wins,
 * OPENBLAS_CORETYPE=Prescott keeps the generic kernels). After such a
 * restart dense_blas_fallback() returns the core OpenBLAS had chosen, for
 * the log; otherwise NULL. */
#define DENSE_BLAS_FALLBACK_ENV "FUNNEL_BLAS_FALLBACK"
void dense_blas_choose_core(char **argv);
const char *dense_blas_fallback(void);

/* Product time, for benchmarks that say where a step goes: while on,
 * every product of the kernels above adds its wall time (clock_gettime
 * around the call, ~50 ns) to one process-wide sum, whichever thread ran
 * it; the rate measurements below never count. dense_timing_take()
 * returns the seconds summed since its last call (over threads: two
 * members busy for 1 ms each make 2 ms) and restarts the sum. Off by
 * default; nothing else reads it. */
void dense_timing_set(int on);
double dense_timing_take(void);

/*
 * Measure fp32 product throughput on C (M,N) = A (M,K) B (K,N), all
 * row-major, on the library dense_gemm_get() names, at the thread count of
 * dense_threads_set(): repeats the product until at least
 * min_seconds elapsed. Returns GFLOP/s (2MNK per product), or a negative
 * ERR_NOMEM if the matrices cannot be allocated.
 */
double dense_sgemm_gflops(size_t M, size_t N, size_t K, double min_seconds);

/* The same, giving GFLOP/s by wall time and by the calling thread's CPU
 * time (what a 1-thread product achieves while the machine is shared).
 * Either pointer may be NULL. 0 or ERR_NOMEM. */
int dense_sgemm_rate(size_t M, size_t N, size_t K, double min_seconds, double *wall_gflops,
                     double *cpu_gflops);

#endif
