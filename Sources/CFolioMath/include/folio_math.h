#ifndef FOLIO_MATH_H
#define FOLIO_MATH_H
#include <stddef.h>

/// Elementwise functions of the inference runner, vectorized (8 lanes; AVX-512, AVX2 and
/// baseline versions chosen at load time). exp is a Cephes-style range reduction and
/// degree-7 polynomial (about 1 ulp on [-87.3, 88.3]; 0 below, as expf's denormals are
/// below any use here; clamped above); erf is Abramowitz and Stegun 7.1.26 (absolute error
/// below 1.5e-7) on top of it.

/// Softmax of each of `rows` rows of `width` values, in place. Entries of -inf become 0; a
/// row needs at least one finite entry.
void folio_softmax_rows(float *x, size_t rows, size_t width);

/// x = 0.5 x (1 + erf(x / sqrt 2)) (BERT's exact GELU), in place.
void folio_gelu_erf(float *x, size_t n);

/// gate = silu(gate) * up = gate / (1 + exp(-gate)) * up, in place.
void folio_silu_mul(float *gate, const float *up, size_t n);

/// y[r] = dot(w[r, 0..<k], x) for r < n (w row-major), or added to y[r] when `accumulate`
/// is non-zero: a matrix-vector product that streams the weights once, in order.
void folio_gemv(const float *w, size_t n, size_t k, const float *x, float *y, int accumulate);

#endif
