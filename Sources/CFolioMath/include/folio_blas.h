#ifndef FOLIO_BLAS_H
#define FOLIO_BLAS_H

/// OpenBLAS, loaded at run time rather than linked.
///
/// Debian's OpenBLAS 0.3.21 does not recognise every CPU it runs on: on the Xeon (Sapphire
/// Rapids, AVX-512) of this project's machines it falls back to its Prescott (SSE3) kernels,
/// and sgemm runs at 41 GFLOP/s on one core instead of 171 with its SkylakeX kernels
/// (Tools/bench/weights_bench.py's machine, measured side by side). The kernels are chosen
/// once, when the library is loaded, from OPENBLAS_CORETYPE; so the library is opened here,
/// after that variable is set from the CPU's features (SkylakeX with AVX-512 F/BW/VL/DQ,
/// Haswell with AVX2 and FMA), unless the user has set it. Its own threads are turned off:
/// Folio splits the work itself.

/// Loads the library once; 0 on success, -1 when libopenblas.so.0 cannot be opened.
int folio_blas_load(void);

/// The kernels OpenBLAS chose ("SkylakeX", ...), or "" before a successful load.
const char *folio_blas_core(void);

/// cblas_sgemm in row-major order: C[m, n] = alpha A B + beta C, with B transposed when
/// trans_b is non-zero (A [m, k] row-major with leading dimension lda; B [n, k] or [k, n]).
void folio_sgemm(int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                 float beta, float *c, int ldc);

#endif
