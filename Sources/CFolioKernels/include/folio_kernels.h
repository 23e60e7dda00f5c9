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

/// The affine search of AffineKernel.swift for a group with minimum lo < maximum hi: every
/// start of a 5 x 5 grid of ranges (lo raised and hi lowered by 0 to 10 % of hi - lo) gets
/// one round (codes round(clamp((x - m) / s, 0, top)) for (s, m) rounded to float16, their
/// squared error, and a least-squares refit of (s, m)); the three starts with the smallest
/// errors continue from their refits for up to three more rounds. Stores the float16-valued
/// pair with the smallest error and returns 1, or returns 0 if no pair was usable.
int folio_affine_search(const float *x, size_t n, float lo, float hi, float top, float *scale, float *min);
void folio_affine_codes(const float *x, size_t n, float s, float m, float top, uint8_t *codes);

/// Accumulates Σ(a-b)², Σa², Σb², Σab into sums[0..3] and max |a-b| into *max_abs
/// (NaN stays NaN).
void folio_error_stats(const float *a, const float *b, size_t n, double sums[4], double *max_abs);

/// bfloat16 bits to float.
void folio_bf16_to_f32(const uint16_t *src, size_t n, float *dst);


/// Row record kinds for folio_gather_rows (Formats/FOLIO.md section 6).
enum { FOLIO_ROW_F32 = 0, FOLIO_ROW_F16 = 1, FOLIO_ROW_BF16 = 2, FOLIO_ROW_INT8 = 3,
       FOLIO_ROW_INT8_GROUPS = 4, FOLIO_ROW_INT4_GROUPS = 5, FOLIO_ROW_AFFINE8_GROUPS = 6 };

/// Decodes the records at base + offsets[i] (i < n; rows of `width` values, records of
/// `record_size` bytes, groups of `group` values) into out + i * out_stride, or adds them
/// there when `accumulate` is non-zero. Rows are taken in chunks; every cache line of a
/// chunk is either prefetched into L2 while the previous chunk is decoded (the misses of
/// scattered rows overlap each other and the arithmetic) or loaded in a tight loop just
/// before the chunk is decoded, whichever the calling thread measures as faster. Values are
/// identical to the scalar decoders (no fused multiply-add) either way.
void folio_gather_rows(int kind, size_t group, const uint8_t *base, const int64_t *offsets, size_t n,
                       size_t width, size_t record_size, float *out, size_t out_stride, int accumulate);

/// Embedding bags of one row per table: for each of n tokens, the records at
/// base + offsets[i * tables + k] (k < tables, all of one kind and size) decoded and summed
/// into out + i * out_stride (the first table stores, the others add, in table order).
/// Works token by token (int8 and int4 with the sum held in AVX-512 registers where the CPU
/// has them), in chunks of whole tokens brought in as in folio_gather_rows.
void folio_gather_sum(int kind, size_t group, const uint8_t *base, const int64_t *offsets, size_t n, size_t tables,
                      size_t width, size_t record_size, float *out, size_t out_stride);

/// folio_gather_sum with the tokens split over `threads` threads of a small pool whose
/// workers spin between jobs (waking sleeping threads per batch costs more than a batch).
void folio_gather_sum_parallel(size_t threads, int kind, size_t group, const uint8_t *base, const int64_t *offsets, size_t n,
                               size_t tables, size_t width, size_t record_size, float *out, size_t out_stride);

/// Paged tables of one layout, from row ids: row r of table k is at table_starts[k] +
/// (r / rows_per_page) * block + (r % rows_per_page) * row_stride; the ids are [n, tables]
/// (token-major). `sum` non-zero: as folio_gather_sum (a token's rows summed into
/// out + i * out_stride); zero: every row to its own place, row k of token i at
/// out + (i * tables + k) * out_stride. The tokens are split over `threads` pool threads as in
/// folio_gather_sum_parallel; each worker computes the offsets of its own rows.
void folio_gather_paged(size_t threads, int sum, int kind, size_t group, const uint8_t *base, const int64_t *table_starts,
                        const int64_t *rows, size_t n, size_t tables, uint64_t rows_per_page, uint64_t block,
                        uint64_t row_stride, size_t width, size_t record_size, float *out, size_t out_stride);

/// Segments of gathered chunks run so far (all threads) with their records prefetched one
/// chunk ahead (counts[0]) and loaded just before decoding (counts[1]): the two ways the
/// lookup kernels choose between by timing them.
void folio_gather_segments(uint64_t counts[2]);

/// Lets the lookup kernels use their AVX-512 versions (on, where the CPU has them; the
/// default) or only the portable ones (off), which give the same values bit for bit.
void folio_kernels_use_avx512(int on);

/// Runs fn(ctx, p, parts) for every p < parts (at most 64) on the calling thread and the
/// workers of a small pool that spin for a few milliseconds after each job (waking sleeping
/// threads costs tens of microseconds, more than many jobs take). One job at a time; a call
/// made while the pool is busy runs its parts one after another on the calling thread.
void folio_parallel(size_t parts, void (*fn)(void *ctx, size_t part, size_t parts), void *ctx);
/// Creates the pool's workers for up to `parts` parts now, without waiting for them (each
/// runs only the jobs submitted after it was created).
void folio_parallel_start(size_t parts);

/// The random-access ceiling: reads one byte of every 64-byte cache line that the records
/// at base + offsets[i] (record_size bytes each) touch, and nothing else; returns the sum
/// of the bytes read.
uint64_t folio_touch_rows(const uint8_t *base, const int64_t *offsets, size_t n, size_t record_size);

#endif
