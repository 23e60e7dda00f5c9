#ifndef FOLIO_BLOCK_QUANT_H
#define FOLIO_BLOCK_QUANT_H
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* The quantization of one block of at most 32 inputs to int16 with L levels, as
   folio_matvec.h states it: the block's largest magnitude and float sum (added value by
   value, in order), the inverse step (finite: 0 · inv stays 0) and q = clamp(rint(x · inv),
   -L, L). Shared by the matrix-vector inputs (matvec.c) and the prefill inputs (matmul.c),
   so decoding and prefill quantize a block alike, by plain loops and by AVX-512 alike. */

static inline void block_stats(const float *x, size_t n, float *amax, float *sum) {
    float a = 0, s = 0;
    for (size_t j = 0; j < n; j++) { float v = fabsf(x[j]); a = v > a ? v : a; s += x[j]; }
    *amax = a;
    *sum = s;
}

static inline float block_inverse(float amax, float L) { return amax > 0 ? fminf(L / amax, FLT_MAX) : 0.0f; }

static inline int16_t block_code(float x, float inv, float L) {
    float v = x * inv;
    v = v < -L ? -L : (v > L ? L : v);
    return (int16_t)rintf(v);
}

#if defined(__x86_64__)
#include <immintrin.h>
#define BQ_AVX512 __attribute__((target("avx512f"), always_inline))

/* The block's values as two vectors (zero past n), its largest magnitude and its sum. */
BQ_AVX512 static inline void block_load(const float *x, size_t n, __m512 *v0, __m512 *v1, float *amax, float *sum) {
    __mmask16 m0 = (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1), m1 = (__mmask16)(n >= 32 ? 0xFFFF : n <= 16 ? 0 : (1u << (n - 16)) - 1);
    *v0 = _mm512_maskz_loadu_ps(m0, x);
    *v1 = _mm512_maskz_loadu_ps(m1, x + 16);
    *amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(*v0), _mm512_abs_ps(*v1)));
    float s = 0;
    for (size_t j = 0; j < n; j++) s += x[j];
    *sum = s;
}

/* block_code of 16 values: the same IEEE product and clamps lane by lane, the conversion to
   nearest even as rintf. */
BQ_AVX512 static inline __m512i block_codes(__m512 v, float inv, float L) {
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, _mm512_set1_ps(inv)), _mm512_set1_ps(-L)), _mm512_set1_ps(L)));
}
#endif

#endif
