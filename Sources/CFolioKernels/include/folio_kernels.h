#ifndef FOLIO_KERNELS_H
#define FOLIO_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/// Quantization and error-measurement loops that clang vectorizes on baseline x86-64 and
/// arm64 (Swift's generic SIMD types do not, for conversions and min/max). Rounding to
/// nearest-even adds and subtracts 1.5 * 2^23 after clamping, so no SSE4.1 is needed.

/// max |x[i]|; NaN if any x[i] is NaN.
float folio_max_abs(const float *x, size_t n);
/// min and max of x.
void folio_min_max(const float *x, size_t n, float *lo, float *hi);

/// Symmetric codes q = round(clamp(x / s, -127, 127)): squared error of s * q, and the sums
/// Σ x q and Σ q q (for the least-squares scale).
void folio_sym_pass(const float *x, size_t n, float s, double *err, double *sxq, double *sqq);
void folio_sym_codes(const float *x, size_t n, float s, int8_t *codes);

/// Affine codes q = round(clamp((x - m) / s, 0, top)): squared error of s * q + m, and the
/// sums Σ q, Σ q q, Σ x, Σ x q.
void folio_affine_pass(const float *x, size_t n, float s, float m, float top,
                       double *err, double *sq, double *sqq, double *sx, double *sxq);
void folio_affine_codes(const float *x, size_t n, float s, float m, float top, uint8_t *codes);

/// Accumulates Σ(a-b)², Σa², Σb², Σab into sums[0..3] and max |a-b| into *max_abs
/// (NaN stays NaN).
void folio_error_stats(const float *a, const float *b, size_t n, double sums[4], double *max_abs);

/// bfloat16 bits to float.
void folio_bf16_to_f32(const uint16_t *src, size_t n, float *dst);

#endif
