#ifndef FOLIO_MATVEC_H
#define FOLIO_MATVEC_H
#include <stddef.h>
#include <stdint.h>

/// Matrix products straight from stored row records (Formats/FOLIO.md sections 5 to 7): one
/// kernel per encoding, each with a plain reference beside it.
///
/// A matrix is `rows` records of `cols` values of one kind (the FOLIO_ROW_* kinds of
/// folio_kernels.h; `group` values per group for the grouped kinds); row r's record is at
///     base + (r / rows_per_block) * block + (r % rows_per_block) * stride
/// which covers dense rows (rows_per_block 1, block = stride), records back to back and paged
/// tables alike.
typedef struct {
    int kind;
    size_t group;
    const uint8_t *base;
    size_t rows, cols;
    size_t rows_per_block, block, stride;
} folio_matrix;

/// Bytes of a prepared activation for `cols` inputs (a multiple of 64).
size_t folio_act_size(size_t cols);

/// Prepares one input vector x[cols] for folio_matvec into `act` (folio_act_size bytes,
/// 64-byte aligned): for the integer kinds, x cut into blocks of 32 values, block b quantized
/// to int16 as d_b = max|x| / 32767 and q = clamp(rint(x * (32767 / max|x|)), -32767, 32767)
/// (all zero when the block is), with the block's float sum; for int4 codes, the same blocks
/// quantized with d4_b = max|x| / 32639, q = clamp(rint(x * (32639 / max|x|)), -32639, 32639),
/// held as two int8 digits q = 256 h + l (h in [-127, 127], l in [-128, 127]); for
/// bfloat16, x split as hi + lo, both rounded to bfloat16 (x - hi - lo is below 2^-16 |x|).
void folio_act_prepare(const float *x, size_t cols, void *act);
/// folio_act_prepare by plain loops (the same bytes).
void folio_act_prepare_portable(const float *x, size_t cols, void *act);

/// y[r] = (accumulate ? y[r] : 0) + row r · x for lo <= r < hi, reading every record once.
/// float32, float16 and bfloat16 rows: float32 products (bfloat16 against hi and lo of x);
/// int8 and int8/gN: Σ_b s · d_b · Σ q_w q_x with exact integer sums per block; int4/gN
/// likewise with d4_b and its q; int4/gN and affine8/gN add m_g · Σ_{j in g} x_j with
/// the float sums. AVX-512 (VNNI, BF16) versions
/// where the CPU has them, portable loops otherwise.
void folio_matvec(const folio_matrix *m, size_t lo, size_t hi, const float *x, const void *act, float *y, int accumulate);

/// folio_matvec for n inputs at once: input i at x + i * xstride (its prepared form at
/// act + i * astride bytes), its results at y + i * ystride. Each record is read once for up
/// to three inputs, and every input's values are bit for bit those folio_matvec gives it alone.
void folio_matvec_batch(const folio_matrix *m, size_t lo, size_t hi, size_t n, const float *x, size_t xstride, const void *act, size_t astride,
                        float *y, size_t ystride, int accumulate);
/// folio_matvec with the portable loops only (whatever the CPU has).
void folio_matvec_portable(const folio_matrix *m, size_t lo, size_t hi, const float *x, const void *act, float *y, int accumulate);

/// The reference: the same quantities summed in double, one term at a time.
void folio_matvec_ref(const folio_matrix *m, size_t lo, size_t hi, const float *x, const void *act, float *y, int accumulate);

/// Rows lo..<hi decoded to float32 (s·q + m as in the storage layer's decoders), row r to
/// out + (r - lo) * cols: the tiles of a prefill's matrix product.
void folio_matrix_decode(const folio_matrix *m, size_t lo, size_t hi, float *out);

/// Use the AVX-512 kernels where the CPU has them (on, the default) or only the portable
/// ones (off). Returns a bit set of what the vector paths may use: 1 VNNI int8 dot products,
/// 2 BF16 dot products, 4 AVX-512F float kernels.
int folio_matvec_use_vector(int on);
/// The bit set folio_matvec uses now.
int folio_matvec_features(void);
/// How far ahead (bytes) each row asks for the next records' lines: 4096, or 0 on AMD CPUs,
/// unless FOLIO_MATVEC_PREFETCH=BYTES is set (read at load time).
size_t folio_matvec_prefetch_bytes(void);

/// Matrix products of many inputs with integer-coded weights (int8, int8/gN, int4/gN,
/// affine8/gN; groups of 32 or more) by integer dot products from the records (matmul.c).
/// Bytes of the prepared form of n inputs of `cols` values (allocate 64-byte aligned).
size_t folio_mm_inputs_size(size_t n, size_t cols);
/// The input levels against matrices of `kind`: 32639 for int4/gN, else 32767.
int folio_mm_levels(int kind);
/// Prepares inputs x[n][cols] for folio_mm against matrices of `kind`: each block of 32 of
/// each input quantized exactly as folio_act_prepare does (the same q, step and float sum),
/// laid out 16 inputs side by side.
void folio_mm_prepare(int kind, const float *x, size_t n, size_t cols, void *prep);
/// folio_mm_prepare of inputs t0..<t1 only (t0 rounded down to a multiple of 16; parts
/// split on multiples of 16 can be prepared on different threads).
void folio_mm_prepare_part(int kind, const float *x, size_t n, size_t cols, void *prep, size_t t0, size_t t1);
/// Whether folio_mm computes products with this matrix (its kind and groups).
int folio_mm_supported(const folio_matrix *m);
/// y[t * ystride + r] = (accumulate ? that : 0) + row r · x_t for lo <= r < hi and t < n:
/// Σ_b s · d_b · Σ q_w q_x (+ m · Σ x) per block, the integer sums exact, as folio_matvec,
/// the float sums in another order. AVX-512 VNNI where the CPU has it, plain loops
/// otherwise (folio_mm_vector). Returns 0, or -1 for a matrix folio_mm_supported refuses,
/// -2 when out of memory.
int folio_mm(const folio_matrix *m, size_t lo, size_t hi, size_t n, const void *prep, float *y, size_t ystride, int accumulate);
/// folio_mm by the plain loops only, whatever the CPU has.
int folio_mm_portable(const folio_matrix *m, size_t lo, size_t hi, size_t n, const void *prep, float *y, size_t ystride, int accumulate);
/// Whether folio_mm runs its AVX-512 VNNI kernel on this CPU (else the plain loops).
int folio_mm_vector(void);
/// Input t's quantized value j in prepared inputs, with its block's step and float sum
/// (for tests and tools).
int16_t folio_mm_input(const void *prep, size_t cols, size_t t, size_t j, float *step, float *sum);

#endif
