#ifndef FOLIO_BLAS_H
#define FOLIO_BLAS_H

/// OpenBLAS, loaded at run time rather than linked.
///
/// Debian's OpenBLAS 0.3.21 does not recognise every CPU it runs on: on the Xeon of this
/// project's machines (family 6 model 207, AVX-512) it falls back to its Prescott (SSE3)
/// kernels, several times slower than its SkylakeX ones (compare `folio run --json` prefill
/// with OPENBLAS_CORETYPE=Prescott and without). The kernels are chosen
/// once, when the library is loaded, from OPENBLAS_CORETYPE; so the library is opened here,
/// after that variable is set from the CPU's features (SkylakeX with AVX-512 F/BW/VL/DQ,
/// Haswell with AVX2 and FMA), unless the user has set it. Its own threads are turned off:
/// Folio splits the work itself.

/// Loads the library once; 0 on success, -1 when libopenblas.so.0 cannot be opened.
int folio_blas_load(void);

/// cblas_sgemm in row-major order: C[m, n] = alpha A B + beta C, with B transposed when
/// trans_b is non-zero (A [m, k] row-major with leading dimension lda; B [n, k] or [k, n]).
void folio_sgemm(int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                 float beta, float *c, int ldc);

#endif
