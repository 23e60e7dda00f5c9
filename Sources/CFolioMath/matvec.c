#include "folio_matvec.h"
#include "folio_kernels.h"
#include "block_quant.h"
#include <math.h>
#include <float.h>
#include <string.h>
#include <stdlib.h>
#include <stdatomic.h>

/* Matrix-vector products over stored row records. Each encoding has three versions: the
   reference (double sums, one term at a time), a portable one (plain loops) and an AVX-512
   one (VNNI for the integer codes, BF16 dot products for bfloat16), chosen per call from the
   CPU features found at load time.

   The integer kinds never widen the weights to float: the input is quantized once per call
   to int16 in blocks of 32 (folio_act_prepare, step d_b = amax / 32767), and each block of a
   row contributes scale_w * d_b * Σ q_w q_x with the integer sum exact (at most
   32 * 255 * 32767 in magnitude). llama.cpp quantizes the input to int8 (its Q8_0 dot
   products); 16 bits (VNNI's dpwssd, 32 int16 pairs per instruction, the codes widened
   first) leave the input error at 1/65534 of a block's largest value instead of 1/254, which
   int8 and int4 weights need to stay within 1e-4 and 1e-2 of cosine of float32 on the runner
   fixtures (int8 inputs measured 0.9993 and 0.988 there). Group sizes are multiples of 32
   (FOLIO.md 9.1), so a block never spans two groups.

   int4 codes are unsigned (0..15), which lets them take the unsigned side of VNNI's int8 dot
   product (dpbusd, 64 pairs per instruction, no widening): for them the input is quantized
   to int16 per block with a step a little coarser (d4_b = amax / 32639) and written as two
   int8 digits, q = 256 h + l with h in [-127, 127] and l in [-128, 127], each multiplied by the codes; the
   products stay exact in int32. (15-bit inputs as 128 h + l, 1/32512 of a block's largest
   value, flipped a routing decision of the tiny-longcat fixture: cosine 0.94 at one
   position.) */

#define BLOCK 32

static inline size_t blocks_of(size_t cols) { return (cols + BLOCK - 1) / BLOCK; }
static inline size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

typedef struct {
    const int16_t *q;    /* [kp] codes in order */
    const int8_t *h4;    /* [kp4] int4 inputs' high digits, per quad of blocks (b..b+3, b % 4 = 0):
                            the 16 even-indexed values of b, b+1, b+2, b+3, then their 16 odd ones */
    const int8_t *l4;    /* [kp4] their low digits, in the same order */
    const float *d;      /* [nb] block steps */
    const float *d4;     /* [nb] block steps of the int4 inputs */
    const float *xs;     /* [nb] float sums of x per block */
    const uint16_t *xh;  /* [kp] bfloat16 hi parts */
    const uint16_t *xl;  /* [kp] bfloat16 lo parts */
} act_view;

/* Where value j of block b sits among the int4 digits. */
static inline size_t digit_at(size_t b, size_t j) { return (b / 4) * 128 + (j & 1) * 64 + (b & 3) * 16 + j / 2; }

static void act_offsets(size_t cols, size_t off[8], size_t *total) {
    size_t nb = blocks_of(cols), kp = nb * BLOCK, kp4 = (nb + 3) / 4 * 4 * BLOCK;
    off[0] = 0;                       /* q */
    off[1] = align64(2 * kp);         /* h4 */
    off[2] = off[1] + kp4;            /* l4 */
    off[3] = off[2] + kp4;            /* d */
    off[4] = off[3] + 4 * nb;         /* d4 */
    off[5] = off[4] + 4 * nb;         /* xs */
    off[6] = align64(off[5] + 4 * nb);/* xh */
    off[7] = off[6] + 2 * kp;         /* xl */
    *total = align64(off[7] + 2 * kp);
}

size_t folio_act_size(size_t cols) {
    size_t off[8], total;
    act_offsets(cols, off, &total);
    return total;
}

static act_view view(const void *act, size_t cols) {
    size_t off[8], total;
    act_offsets(cols, off, &total);
    const uint8_t *p = act;
    return (act_view){(const int16_t *)p, (const int8_t *)(p + off[1]), (const int8_t *)(p + off[2]), (const float *)(p + off[3]),
                      (const float *)(p + off[4]), (const float *)(p + off[5]), (const uint16_t *)(p + off[6]), (const uint16_t *)(p + off[7])};
}

static inline uint16_t bf16_round(float v) {
    uint32_t u; memcpy(&u, &v, 4);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((u >> 16) | 0x40);  /* NaN stays NaN */
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
static inline float bf16_value(uint16_t b) { uint32_t u = (uint32_t)b << 16; float v; memcpy(&v, &u, 4); return v; }
static inline float half_value(const uint8_t *p) { _Float16 h; memcpy(&h, p, 2); return (float)h; }

/* The parts of a prepared input being written (the layout of act_offsets), with the digits of
   the blocks missing from the last quad zeroed. */
typedef struct { int16_t *q; int8_t *h4, *l4; float *d, *d4, *xs; uint16_t *xh, *xl; } act_out;

static act_out act_out_view(void *act, size_t cols) {
    size_t off[8], total, nb = blocks_of(cols);
    act_offsets(cols, off, &total);
    uint8_t *p = act;
    act_out o = {(int16_t *)p, (int8_t *)(p + off[1]), (int8_t *)(p + off[2]), (float *)(p + off[3]), (float *)(p + off[4]),
                 (float *)(p + off[5]), (uint16_t *)(p + off[6]), (uint16_t *)(p + off[7])};
    if (nb % 4) { memset(o.h4 + nb / 4 * 128, 0, 128); memset(o.l4 + nb / 4 * 128, 0, 128); }
    return o;
}

void folio_act_prepare_portable(const float *x, size_t cols, void *act) {
    act_out o = act_out_view(act, cols);
    int16_t *q = o.q;
    int8_t *h4 = o.h4, *l4 = o.l4;
    float *d = o.d, *d4 = o.d4, *xs = o.xs;
    uint16_t *xh = o.xh, *xl = o.xl;
    size_t nb = blocks_of(cols);
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * BLOCK, n = cols - lo < BLOCK ? cols - lo : BLOCK;
        float amax, sum;
        block_stats(x + lo, n, &amax, &sum);
        float inv = block_inverse(amax, 32767.0f);
        d[b] = amax / 32767.0f;
        xs[b] = sum;
        for (size_t j = 0; j < BLOCK; j++) q[lo + j] = j < n ? block_code(x[lo + j], inv, 32767.0f) : 0;
        float inv4 = block_inverse(amax, 32639.0f);
        d4[b] = amax / 32639.0f;
        for (size_t j = 0; j < BLOCK; j++) {
            int32_t q16 = j < n ? block_code(x[lo + j], inv4, 32639.0f) : 0, h = (q16 + 128) >> 8;  /* arithmetic shift: floor */
            h4[digit_at(b, j)] = (int8_t)h;
            l4[digit_at(b, j)] = (int8_t)(q16 - 256 * h);
        }
        for (size_t j = 0; j < BLOCK; j++) {
            float v = j < n ? x[lo + j] : 0.0f;
            uint16_t h = bf16_round(v);
            xh[lo + j] = h;
            xl[lo + j] = bf16_round(v - bf16_value(h));
        }
    }
}

static inline const uint8_t *record(const folio_matrix *m, size_t r) {
    return m->base + (r / m->rows_per_block) * m->block + (r % m->rows_per_block) * m->stride;
}

/* ---- reference ---- */

static double ref_row(const folio_matrix *m, const uint8_t *rec, const float *x, const act_view *a) {
    size_t k = m->cols, G = m->group ? k / m->group : 0;
    double s = 0;
    switch (m->kind) {
    case FOLIO_ROW_F32: for (size_t j = 0; j < k; j++) { float w; memcpy(&w, rec + 4 * j, 4); s += (double)w * x[j]; } return s;
    case FOLIO_ROW_F16: for (size_t j = 0; j < k; j++) s += (double)half_value(rec + 2 * j) * x[j]; return s;
    case FOLIO_ROW_BF16:
        for (size_t j = 0; j < k; j++) {
            uint16_t b; memcpy(&b, rec + 2 * j, 2);
            s += (double)bf16_value(b) * ((double)bf16_value(a->xh[j]) + (double)bf16_value(a->xl[j]));
        }
        return s;
    case FOLIO_ROW_INT8: {
        float sw; memcpy(&sw, rec, 4);
        const int8_t *c = (const int8_t *)(rec + 4);
        for (size_t j = 0; j < k; j++) s += (double)sw * a->d[j / BLOCK] * c[j] * a->q[j];
        return s;
    }
    case FOLIO_ROW_INT8_GROUPS: {
        const int8_t *c = (const int8_t *)(rec + 2 * G);
        for (size_t j = 0; j < k; j++) s += (double)half_value(rec + 2 * (j / m->group)) * a->d[j / BLOCK] * c[j] * a->q[j];
        return s;
    }
    case FOLIO_ROW_INT4_GROUPS: {
        const uint8_t *c = rec + 4 * G;
        for (size_t j = 0; j < k; j++) {
            int qw = (c[j / 2] >> (4 * (j % 2))) & 15;
            size_t at = digit_at(j / BLOCK, j % BLOCK);
            s += (double)half_value(rec + 4 * (j / m->group)) * a->d4[j / BLOCK] * qw * (256.0 * a->h4[at] + a->l4[at]);
        }
        for (size_t b = 0; b < blocks_of(k); b++) s += (double)half_value(rec + 4 * (b * BLOCK / m->group) + 2) * a->xs[b];
        return s;
    }
    case FOLIO_ROW_AFFINE8_GROUPS: {
        const uint8_t *c = rec + 4 * G;
        for (size_t j = 0; j < k; j++) s += (double)half_value(rec + 4 * (j / m->group)) * a->d[j / BLOCK] * c[j] * a->q[j];
        for (size_t b = 0; b < blocks_of(k); b++) s += (double)half_value(rec + 4 * (b * BLOCK / m->group) + 2) * a->xs[b];
        return s;
    }
    }
    return NAN;
}

void folio_matvec_ref(const folio_matrix *m, size_t lo, size_t hi, const float *x, const void *act, float *y, int accumulate) {
    act_view a = view(act, m->cols);
    for (size_t r = lo; r < hi; r++) {
        double v = ref_row(m, record(m, r), x, &a);
        y[r] = accumulate ? (float)((double)y[r] + v) : (float)v;
    }
}

/* ---- portable ---- */

static float plain_row(int kind, const uint8_t *rec, size_t k, const float *x, const act_view *a) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    if (kind == FOLIO_ROW_F32) {
        for (; j + 8 <= k; j += 8) for (int l = 0; l < 8; l++) { float w; memcpy(&w, rec + 4 * (j + l), 4); acc[l] += w * x[j + l]; }
        for (; j < k; j++) { float w; memcpy(&w, rec + 4 * j, 4); acc[0] += w * x[j]; }
    } else if (kind == FOLIO_ROW_F16) {
        for (; j + 8 <= k; j += 8) for (int l = 0; l < 8; l++) acc[l] += half_value(rec + 2 * (j + l)) * x[j + l];
        for (; j < k; j++) acc[0] += half_value(rec + 2 * j) * x[j];
    } else {
        for (; j < k; j++) {
            uint16_t b; memcpy(&b, rec + 2 * j, 2);
            float w = bf16_value(b);
            acc[j % 8] += w * bf16_value(a->xh[j]) + w * bf16_value(a->xl[j]);
        }
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static inline int32_t idot_s8(const int8_t *w, const int16_t *q, size_t n) {
    int32_t s = 0;
    for (size_t j = 0; j < n; j++) s += (int32_t)w[j] * q[j];
    return s;
}
static inline int32_t idot_u8(const uint8_t *w, const int16_t *q, size_t n) {
    int32_t s = 0;
    for (size_t j = 0; j < n; j++) s += (int32_t)w[j] * q[j];
    return s;
}

static float portable_row(const folio_matrix *m, const uint8_t *rec, const float *x, const act_view *a) {
    size_t k = m->cols, G = m->group ? k / m->group : 0, nb = blocks_of(k);
    float s = 0, mins = 0;
    switch (m->kind) {
    case FOLIO_ROW_F32: case FOLIO_ROW_F16: case FOLIO_ROW_BF16: return plain_row(m->kind, rec, k, x, a);
    case FOLIO_ROW_INT8: {
        float sw; memcpy(&sw, rec, 4);
        const int8_t *c = (const int8_t *)(rec + 4);
        for (size_t b = 0; b < nb; b++) {
            size_t n = k - b * BLOCK < BLOCK ? k - b * BLOCK : BLOCK;
            s += a->d[b] * (float)idot_s8(c + b * BLOCK, a->q + b * BLOCK, n);
        }
        return sw * s;
    }
    case FOLIO_ROW_INT8_GROUPS: {
        const int8_t *c = (const int8_t *)(rec + 2 * G);
        for (size_t b = 0; b < nb; b++)
            s += half_value(rec + 2 * (b * BLOCK / m->group)) * a->d[b] * (float)idot_s8(c + b * BLOCK, a->q + b * BLOCK, BLOCK);
        return s;
    }
    case FOLIO_ROW_INT4_GROUPS: {
        const uint8_t *c = rec + 4 * G;
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *p = c + b * BLOCK / 2;
            const int8_t *h = a->h4 + digit_at(b, 0), *l = a->l4 + digit_at(b, 0);
            int32_t th = 0, tl = 0;
            for (size_t j = 0; j < BLOCK / 2; j++) {
                th += (int32_t)(p[j] & 15) * h[j] + (int32_t)(p[j] >> 4) * h[64 + j];
                tl += (int32_t)(p[j] & 15) * l[j] + (int32_t)(p[j] >> 4) * l[64 + j];
            }
            const uint8_t *pair = rec + 4 * (b * BLOCK / m->group);
            s += half_value(pair) * a->d4[b] * (float)(256 * th + tl);
            mins += half_value(pair + 2) * a->xs[b];
        }
        return s + mins;
    }
    case FOLIO_ROW_AFFINE8_GROUPS: {
        const uint8_t *c = rec + 4 * G;
        for (size_t b = 0; b < nb; b++) {
            const uint8_t *pair = rec + 4 * (b * BLOCK / m->group);
            s += half_value(pair) * a->d[b] * (float)idot_u8(c + b * BLOCK, a->q + b * BLOCK, BLOCK);
            mins += half_value(pair + 2) * a->xs[b];
        }
        return s + mins;
    }
    }
    return NAN;
}

/* ---- AVX-512 ---- */

static _Atomic int vec_features;  /* bit 1: VNNI, 2: BF16, 4: AVX-512F */

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))
#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,f16c,fma")))

/* One block: 32 codes widened to int16 against the block's 32 int16 inputs, Σ exact in
   16 int32 lanes, scaled by the block's step into the float accumulator. */
#define BLOCK_FMA(acc, w16, qptr, scale) \
    (acc) = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpwssd_epi32(_mm512_setzero_si512(), (w16), _mm512_loadu_si512((const void *)(qptr)))), \
                            _mm512_set1_ps(scale), (acc))

static inline __mmask32 tail_mask(size_t n) { return (__mmask32)(n >= 32 ? 0xFFFFFFFFu : ((1u << n) - 1)); }

VNNI static float int8_row_vnni(const uint8_t *rec, size_t k, const act_view *a) {
    float sw; memcpy(&sw, rec, 4);
    const int8_t *c = (const int8_t *)(rec + 4);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    size_t b = 0, full = k / BLOCK;
    for (; b + 2 <= full; b += 2) {
        BLOCK_FMA(acc0, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(c + b * BLOCK))), a->q + b * BLOCK, a->d[b]);
        BLOCK_FMA(acc1, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(c + b * BLOCK + BLOCK))), a->q + b * BLOCK + BLOCK, a->d[b + 1]);
    }
    for (; b < blocks_of(k); b++) {
        __m256i w = _mm256_maskz_loadu_epi8(tail_mask(k - b * BLOCK), c + b * BLOCK);
        BLOCK_FMA(acc0, _mm512_cvtepi8_epi16(w), a->q + b * BLOCK, a->d[b]);
    }
    return sw * _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* The kernels below take up to MAXM input vectors at once: each weight block is loaded (and
   widened or unpacked) once and used for every input, and each input has its own
   accumulators, the same for one input as for several, so a row's product with an input is
   bit for bit the same whatever else is computed beside it (a speculative pass over K
   proposals gives exactly the values of K + 1 single steps). The independent inputs are also
   what keeps the multiply-add units busy: a single input's chains wait on their latency. */
#define MAXM 3
#define INLINE static inline __attribute__((always_inline))

/* Blocks are taken four at a time into four accumulators, whatever the group size: with
   groups of 32 a loop per group would chain every block's multiply-add on one register. */
VNNI INLINE void int8_groups_rows(const uint8_t *rec, size_t k, size_t group, const act_view *a, const int M, float *out) {
    size_t G = k / group, per = group / BLOCK, nb = G * per;
    const int8_t *c = (const int8_t *)(rec + 2 * G);
    __m512 acc[MAXM][4];
    for (int r = 0; r < M; r++) for (int j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_ps();
    size_t b = 0;
#define W8(i) _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(c + (i) * BLOCK)))
    if (per == 1) {
        /* Groups of 32: 16 blocks' scales converted and multiplied by their steps at once
           (one scalar conversion per block had cost more than the block's products). */
        float sc[MAXM][16];
        for (; b < nb; b += 16) {
            /* The last (n < 16) blocks too, by masked loads: their scalar conversions had cost
               a quarter of a 768-column row. */
            size_t n = nb - b < 16 ? nb - b : 16, i = 0;
            __mmask16 mn = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
            __m512 hs = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mn, rec + 2 * b));
            for (int r = 0; r < M; r++) _mm512_storeu_ps(sc[r], _mm512_mul_ps(hs, _mm512_maskz_loadu_ps(mn, a[r].d + b)));
            for (; i + 4 <= n; i += 4) {
                __m512i w0 = W8(b + i), w1 = W8(b + i + 1), w2 = W8(b + i + 2), w3 = W8(b + i + 3);
                for (int r = 0; r < M; r++) {
                    const int16_t *q = a[r].q + (b + i) * BLOCK;
                    BLOCK_FMA(acc[r][0], w0, q, sc[r][i]);
                    BLOCK_FMA(acc[r][1], w1, q + BLOCK, sc[r][i + 1]);
                    BLOCK_FMA(acc[r][2], w2, q + 2 * BLOCK, sc[r][i + 2]);
                    BLOCK_FMA(acc[r][3], w3, q + 3 * BLOCK, sc[r][i + 3]);
                }
            }
            for (; i < n; i++) {
                __m512i w0 = W8(b + i);
                for (int r = 0; r < M; r++) BLOCK_FMA(acc[r][0], w0, a[r].q + (b + i) * BLOCK, sc[r][i]);
            }
        }
    }
    for (; b + 4 <= nb; b += 4) {
        __m512i w0 = W8(b), w1 = W8(b + 1), w2 = W8(b + 2), w3 = W8(b + 3);
        float h0 = half_value(rec + 2 * (b / per)), h1 = half_value(rec + 2 * ((b + 1) / per));
        float h2 = half_value(rec + 2 * ((b + 2) / per)), h3 = half_value(rec + 2 * ((b + 3) / per));
        for (int r = 0; r < M; r++) {
            const int16_t *q = a[r].q + b * BLOCK;
            BLOCK_FMA(acc[r][0], w0, q, h0 * a[r].d[b]);
            BLOCK_FMA(acc[r][1], w1, q + BLOCK, h1 * a[r].d[b + 1]);
            BLOCK_FMA(acc[r][2], w2, q + 2 * BLOCK, h2 * a[r].d[b + 2]);
            BLOCK_FMA(acc[r][3], w3, q + 3 * BLOCK, h3 * a[r].d[b + 3]);
        }
    }
    for (; b < nb; b++) {
        __m512i w0 = W8(b);
        float h0 = half_value(rec + 2 * (b / per));
        for (int r = 0; r < M; r++) BLOCK_FMA(acc[r][0], w0, a[r].q + b * BLOCK, h0 * a[r].d[b]);
    }
#undef W8
    for (int r = 0; r < M; r++)
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3])));
}

/* int4: a block's 16 bytes hold its 16 even-indexed codes (low nibbles) and its 16 odd ones
   (high nibbles). Four blocks' 64 bytes become two registers of 64 unsigned codes, the even
   ones [b, b+1, b+2, b+3] and the odd ones in the same order, the order of the input digits
   (act_view.h4): int32 lane i of every dpbusd belongs to block b + i / 4, so the even and odd
   halves and both digits land in one sum per lane, 256 Σ w h + Σ w l, before one scaling. */
VNNI INLINE __m512 int4_quad(__m512i lo, __m512i hi, const int8_t *h, const int8_t *l, __m512 scale, __m512 acc) {
    __m512i sh = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(h)), hi, _mm512_loadu_si512(h + 64));
    __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_slli_epi32(sh, 8), lo, _mm512_loadu_si512(l)), hi, _mm512_loadu_si512(l + 64));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc);
}

VNNI INLINE void int4_groups_rows(const uint8_t *rec, size_t k, size_t group, const act_view *a, const int M, float *out) {
    size_t G = k / group, per = group / BLOCK, nb = G * per;
    const uint8_t *c = rec + 4 * G;
    __m512 acc0[MAXM], acc1[MAXM], mv[MAXM], sc[MAXM];
    float mins[MAXM];
    for (int r = 0; r < M; r++) { acc0[r] = acc1[r] = mv[r] = _mm512_setzero_ps(); mins[r] = 0; }
    /* Lane i of a quad's scale vector takes the scale of block 4q + i / 4. */
    const __m512i pick = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    const __m512i nibble = _mm512_set1_epi8(0x0F);
#define QUAD_CODES(i, mask) \
    __m512i v = _mm512_maskz_loadu_epi8(mask, c + (b + (i)) * 16); \
    __m512i lo = _mm512_and_si512(v, nibble), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble); \
    __m512i iq = _mm512_add_epi32(pick, _mm512_set1_epi32((int)(i)));
    for (size_t b = 0; b < nb; b += 16) {
        size_t n = nb - b < 16 ? nb - b : 16;
        __mmask16 mn = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
        if (per == 1) {
            /* The scales and minimums of (up to) 16 groups converted and multiplied at once. */
            __mmask16 m0 = (__mmask16)(2 * n >= 16 ? 0xFFFF : (1u << (2 * n)) - 1), m1 = (__mmask16)(2 * n <= 16 ? 0 : (1u << (2 * n - 16)) - 1);
            __m512 p0 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, rec + 4 * b));
            __m512 p1 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m1, rec + 4 * b + 32));
            __m512 s = _mm512_permutex2var_ps(p0, evens, p1), mg = _mm512_permutex2var_ps(p0, odds, p1);
            for (int r = 0; r < M; r++) {
                sc[r] = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mn, a[r].d4 + b));
                mv[r] = _mm512_fmadd_ps(mg, _mm512_maskz_loadu_ps(mn, a[r].xs + b), mv[r]);
            }
        } else {
            float hs[16], hm[16];
            for (size_t i = 0; i < n; i++) {
                const uint8_t *pair = rec + 4 * ((b + i) / per);
                hs[i] = half_value(pair);
                hm[i] = half_value(pair + 2);
            }
            for (int r = 0; r < M; r++) {
                float t[16] = {0};
                for (size_t i = 0; i < n; i++) {
                    t[i] = hs[i] * a[r].d4[b + i];
                    mins[r] += hm[i] * a[r].xs[b + i];
                }
                sc[r] = _mm512_loadu_ps(t);
            }
        }
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            {
                QUAD_CODES(i, ~(__mmask64)0)
                for (int r = 0; r < M; r++)
                    acc0[r] = int4_quad(lo, hi, a[r].h4 + (b + i) * 32, a[r].l4 + (b + i) * 32, _mm512_permutexvar_ps(iq, sc[r]), acc0[r]);
            }
            {
                QUAD_CODES(i + 4, ~(__mmask64)0)
                for (int r = 0; r < M; r++)
                    acc1[r] = int4_quad(lo, hi, a[r].h4 + (b + i + 4) * 32, a[r].l4 + (b + i + 4) * 32, _mm512_permutexvar_ps(iq, sc[r]), acc1[r]);
            }
        }
        for (; i < n; i += 4) {  /* a short last quad reads only its own blocks' bytes; the missing blocks' digits are zero */
            QUAD_CODES(i, n - i >= 4 ? ~(__mmask64)0 : ((__mmask64)1 << (16 * (n - i))) - 1)
            for (int r = 0; r < M; r++)
                acc0[r] = int4_quad(lo, hi, a[r].h4 + (b + i) * 32, a[r].l4 + (b + i) * 32, _mm512_permutexvar_ps(iq, sc[r]), acc0[r]);
        }
    }
#undef QUAD_CODES
    for (int r = 0; r < M; r++)
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r])) + (_mm512_reduce_add_ps(mv[r]) + mins[r]);
}

VNNI static float affine8_groups_row_vnni(const uint8_t *rec, size_t k, size_t group, const act_view *a) {
    size_t G = k / group, per = group / BLOCK;
    const uint8_t *c = rec + 4 * G;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    float mins = 0;
    for (size_t g = 0; g < G; g++) {
        float sg = half_value(rec + 4 * g), mg = half_value(rec + 4 * g + 2);
        size_t b = g * per, e = b + per;
        float xsum = 0;
        for (; b + 2 <= e; b += 2) {
            BLOCK_FMA(acc0, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c + b * BLOCK))), a->q + b * BLOCK, sg * a->d[b]);
            BLOCK_FMA(acc1, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c + b * BLOCK + BLOCK))), a->q + b * BLOCK + BLOCK, sg * a->d[b + 1]);
            xsum += a->xs[b] + a->xs[b + 1];
        }
        if (b < e) {
            BLOCK_FMA(acc0, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c + b * BLOCK))), a->q + b * BLOCK, sg * a->d[b]);
            xsum += a->xs[b];
        }
        mins += mg * xsum;
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + mins;
}

/* bfloat16: 32 products per instruction, against both parts of x. Decoding reads these rows
   from memory, and at this speed the row-ahead prefetch keeps up with it: four chains (2x in
   cache) and four rows at a time (1.75x in cache) both decoded the 112M model 5-25 % slower
   on an AMD Zen 4 (Tools/bench/matvec_bench.c, folio run alternated). */
BF16 INLINE void bf16_rows(const uint8_t *rec, size_t k, const act_view *a, const int M, float *out) {
    __m512 acc0[MAXM], acc1[MAXM];
    for (int r = 0; r < M; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 32 <= k; j += 32) {
        __m512i w = _mm512_loadu_si512(rec + 2 * j);
        for (int r = 0; r < M; r++) {
            acc0[r] = _mm512_dpbf16_ps(acc0[r], (__m512bh)w, (__m512bh)_mm512_loadu_si512(a[r].xh + j));
            acc1[r] = _mm512_dpbf16_ps(acc1[r], (__m512bh)w, (__m512bh)_mm512_loadu_si512(a[r].xl + j));
        }
    }
    if (j < k) {
        __m512i w = _mm512_maskz_loadu_epi16((__mmask32)((1u << (k - j)) - 1), rec + 2 * j);
        for (int r = 0; r < M; r++) {
            acc0[r] = _mm512_dpbf16_ps(acc0[r], (__m512bh)w, (__m512bh)_mm512_loadu_si512(a[r].xh + j));
            acc1[r] = _mm512_dpbf16_ps(acc1[r], (__m512bh)w, (__m512bh)_mm512_loadu_si512(a[r].xl + j));
        }
    }
    for (int r = 0; r < M; r++) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
}

AVX512 static float f16_row_avx512(const uint8_t *rec, size_t k, const float *x) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    size_t j = 0;
    for (; j + 32 <= k; j += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(rec + 2 * j))), _mm512_loadu_ps(x + j), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(rec + 2 * j + 32))), _mm512_loadu_ps(x + j + 16), acc1);
    }
    for (; j < k; j += 16) {
        __mmask16 m = (__mmask16)(k - j >= 16 ? 0xFFFF : ((1u << (k - j)) - 1));
        acc0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, rec + 2 * j)), _mm512_maskz_loadu_ps(m, x + j), acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

AVX512 INLINE void f32_rows(const uint8_t *rec, size_t k, const float *const *x, const int M, float *out) {
    const float *w = (const float *)(const void *)rec;
    __m512 acc[MAXM][4];
    for (int r = 0; r < M; r++) for (int i = 0; i < 4; i++) acc[r][i] = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 64 <= k; j += 64) {
        __m512 w0 = _mm512_loadu_ps(w + j), w1 = _mm512_loadu_ps(w + j + 16), w2 = _mm512_loadu_ps(w + j + 32), w3 = _mm512_loadu_ps(w + j + 48);
        for (int r = 0; r < M; r++) {
            acc[r][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[r] + j), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[r] + j + 16), acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(x[r] + j + 32), acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(x[r] + j + 48), acc[r][3]);
        }
    }
    for (; j < k; j += 16) {
        __mmask16 m = (__mmask16)(k - j >= 16 ? 0xFFFF : ((1u << (k - j)) - 1));
        __m512 w0 = _mm512_maskz_loadu_ps(m, w + j);
        for (int r = 0; r < M; r++) acc[r][0] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x[r] + j), acc[r][0]);
    }
    for (int r = 0; r < M; r++)
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3])));
}


/* folio_act_prepare with AVX-512F: the same values byte for byte as the portable loop (the
   scalar one called rintf per value, three times: 15 % of a speculative pass of the trained
   n-gram model). Products and clamps are the same IEEE operations lane by lane, the
   conversion rounds to nearest even as rintf does, and the float sum of a block is added in
   the same order, value by value. */
/* bf16_round of 16 floats, in the low halves of 32-bit lanes. */
AVX512 static inline __m512i bf16_round16(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)))), 16);
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
}

AVX512 static void act_prepare_avx512(const float *x, size_t cols, void *act) {
    act_out o = act_out_view(act, cols);
    int16_t *q = o.q;
    int8_t *h4 = o.h4, *l4 = o.l4;
    float *d = o.d, *d4 = o.d4, *xs = o.xs;
    uint16_t *xh = o.xh, *xl = o.xl;
    size_t nb = blocks_of(cols);
    const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * BLOCK, n = cols - lo < BLOCK ? cols - lo : BLOCK;
        __m512 v0, v1;
        float amax, sum;
        block_load(x + lo, n, &v0, &v1, &amax, &sum);
        float inv = block_inverse(amax, 32767.0f);
        d[b] = amax / 32767.0f;
        xs[b] = sum;
        __m512i q0 = block_codes(v0, inv, 32767.0f), q1 = block_codes(v1, inv, 32767.0f);
        _mm256_storeu_si256((__m256i *)(q + lo), _mm512_cvtepi32_epi16(q0));
        _mm256_storeu_si256((__m256i *)(q + lo + 16), _mm512_cvtepi32_epi16(q1));
        float inv4 = block_inverse(amax, 32639.0f);
        d4[b] = amax / 32639.0f;
        __m512i r0 = block_codes(v0, inv4, 32639.0f), r1 = block_codes(v1, inv4, 32639.0f);
        __m512i hi0 = _mm512_srai_epi32(_mm512_add_epi32(r0, _mm512_set1_epi32(128)), 8);
        __m512i hi1 = _mm512_srai_epi32(_mm512_add_epi32(r1, _mm512_set1_epi32(128)), 8);
        __m512i lo0 = _mm512_sub_epi32(r0, _mm512_slli_epi32(hi0, 8)), lo1 = _mm512_sub_epi32(r1, _mm512_slli_epi32(hi1, 8));
        /* digit_at: the block's 16 even-indexed values, then (64 bytes on) its 16 odd ones */
        size_t at = digit_at(b, 0);
        _mm_storeu_si128((__m128i *)(h4 + at), _mm512_cvtepi32_epi8(_mm512_permutex2var_epi32(hi0, evens, hi1)));
        _mm_storeu_si128((__m128i *)(h4 + at + 64), _mm512_cvtepi32_epi8(_mm512_permutex2var_epi32(hi0, odds, hi1)));
        _mm_storeu_si128((__m128i *)(l4 + at), _mm512_cvtepi32_epi8(_mm512_permutex2var_epi32(lo0, evens, lo1)));
        _mm_storeu_si128((__m128i *)(l4 + at + 64), _mm512_cvtepi32_epi8(_mm512_permutex2var_epi32(lo0, odds, lo1)));
        /* bfloat16 hi and lo, rounded to nearest even (NaN kept a NaN), as bf16_round */
        __m512 vs[2] = {v0, v1};
        for (int half = 0; half < 2; half++) {
            __m512i rh = bf16_round16(vs[half]);
            __m512i rl = bf16_round16(_mm512_sub_ps(vs[half], _mm512_castsi512_ps(_mm512_slli_epi32(rh, 16))));
            _mm256_storeu_si256((__m256i *)(xh + lo + 16 * half), _mm512_cvtepi32_epi16(rh));
            _mm256_storeu_si256((__m256i *)(xl + lo + 16 * half), _mm512_cvtepi32_epi16(rl));
        }
    }
}

int folio_matvec_use_vector(int on) {
    __builtin_cpu_init();
    int f = 0;
    if (on && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma")) {
        f |= 4;
        if (__builtin_cpu_supports("avx512vnni")) f |= 1;
        if (__builtin_cpu_supports("avx512bf16")) f |= 2;
    }
    atomic_store_explicit(&vec_features, f, memory_order_relaxed);
    return f;
}
__attribute__((constructor)) static void matvec_detect_cpu(void) { folio_matvec_use_vector(1); }

/* Rows r0..<r1 against inputs x[0..<M] (M <= MAXM), one loop per encoding with the kernel
   inlined and M a constant in each branch (so the loops over inputs unroll into registers). */
typedef struct {
    const folio_matrix *m;
    const float *const *x;
    const act_view *a;
    float *const *y;
    int accumulate;
    size_t ahead, hi;  /* records ahead to prefetch (0: none), and where the range ends */
} rows_job;

#define ROWS_BODY(M, CALL) \
    for (size_t row = r0; row < r1; row++) { \
        const uint8_t *rec = record(j->m, row); \
        if (j->ahead > 0 && row + j->ahead < j->hi) { \
            const uint8_t *p = record(j->m, row + j->ahead); \
            for (size_t o = 0; o < j->m->stride; o += 64) __builtin_prefetch(p + o, 0, 3); \
        } \
        float v[MAXM]; \
        CALL; \
        for (int r = 0; r < (M); r++) { float *o = j->y[r] + row; *o = j->accumulate ? *o + v[r] : v[r]; } \
    }
#define ROWS_LOOP(attr, name, CALL) \
    attr static void name(const rows_job *j, size_t r0, size_t r1, int M) { \
        size_t k = j->m->cols, g = j->m->group; (void)g; \
        const act_view *a = j->a; const float *const *x = j->x; (void)a; (void)x; \
        if (M == 1) { ROWS_BODY(1, CALL(1)) } else if (M == 2) { ROWS_BODY(2, CALL(2)) } else { ROWS_BODY(3, CALL(3)) } \
    }
#define CALL_F32(M) f32_rows(rec, k, x, M, v)
#define CALL_F16(M) for (int r = 0; r < (M); r++) v[r] = f16_row_avx512(rec, k, x[r])
#define CALL_BF16(M) bf16_rows(rec, k, a, M, v)
#define CALL_INT8(M) for (int r = 0; r < (M); r++) v[r] = int8_row_vnni(rec, k, &a[r])
#define CALL_INT8G(M) int8_groups_rows(rec, k, g, a, M, v)
#define CALL_INT4G(M) int4_groups_rows(rec, k, g, a, M, v)
#define CALL_AFF8G(M) for (int r = 0; r < (M); r++) v[r] = affine8_groups_row_vnni(rec, k, g, &a[r])
ROWS_LOOP(AVX512, f32_loop, CALL_F32)
ROWS_LOOP(AVX512, f16_loop, CALL_F16)
ROWS_LOOP(BF16, bf16_loop, CALL_BF16)
ROWS_LOOP(VNNI, int8_loop, CALL_INT8)
ROWS_LOOP(VNNI, int8g_loop, CALL_INT8G)
ROWS_LOOP(VNNI, int4g_loop, CALL_INT4G)
ROWS_LOOP(VNNI, aff8g_loop, CALL_AFF8G)

/* 0 when no vector kernel serves this kind on this CPU. */
static inline int vector_loop(const rows_job *j, size_t r0, size_t r1, int M, int f) {
    switch (j->m->kind) {
    case FOLIO_ROW_F32: if (f & 4) { f32_loop(j, r0, r1, M); return 1; } break;
    case FOLIO_ROW_F16: if (f & 4) { f16_loop(j, r0, r1, M); return 1; } break;
    case FOLIO_ROW_BF16: if (f & 2) { bf16_loop(j, r0, r1, M); return 1; } break;
    case FOLIO_ROW_INT8: if (f & 1) { int8_loop(j, r0, r1, M); return 1; } break;
    case FOLIO_ROW_INT8_GROUPS: if (f & 1) { int8g_loop(j, r0, r1, M); return 1; } break;
    case FOLIO_ROW_INT4_GROUPS: if (f & 1) { int4g_loop(j, r0, r1, M); return 1; } break;
    case FOLIO_ROW_AFFINE8_GROUPS: if (f & 1) { aff8g_loop(j, r0, r1, M); return 1; } break;
    }
    return 0;
}
#else
int folio_matvec_use_vector(int on) { (void)on; return 0; }
#endif

/* Software prefetch, chosen by CPU at load time (FOLIO_MATVEC_PREFETCH=BYTES overrides it).
   On the Intel Xeon the kernels were tuned on (family 6 model 207) the hardware prefetcher
   alone left a row-by-row stream well under the memory's bandwidth on one core, and each row
   asking for the lines of the record 4 KiB ahead helped. On AMD Zen 4 (family 25 model 17)
   the same prefetches cost: 112M decode on one thread, alternated runs, bf16 76 -> 111-116
   tokens/s, int8/g32 157 -> 185-191, int4/g32 164-174 -> 190-192 without them. */
static _Atomic size_t prefetch_bytes;

__attribute__((constructor)) static void matvec_choose_prefetch(void) {
    size_t bytes = 4096;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_is("amd")) bytes = 0;
#endif
    const char *e = getenv("FOLIO_MATVEC_PREFETCH");
    if (e && *e) {
        char *end;
        unsigned long v = strtoul(e, &end, 10);
        if (*end == 0 && v <= (1ul << 20)) bytes = v;
    }
    atomic_store_explicit(&prefetch_bytes, bytes, memory_order_relaxed);
}

size_t folio_matvec_prefetch_bytes(void) { return atomic_load_explicit(&prefetch_bytes, memory_order_relaxed); }

static void matvec(const folio_matrix *m, size_t lo, size_t hi, size_t n, const float *x, size_t xstride, const void *act, size_t astride,
                   float *y, size_t ystride, int accumulate, int f) {
    size_t rs = m->stride, pb = atomic_load_explicit(&prefetch_bytes, memory_order_relaxed), ahead = rs ? (pb + rs - 1) / rs : 0;
    const float *xs[MAXM];
    float *ys[MAXM];
    act_view a[MAXM];
    memset(a, 0, sizeof a);
    /* With more than MAXM inputs, 16 records at a time for every group of inputs: they stay
       in L1 while the groups pass over them, so the weights stream from memory once. */
    size_t step = n <= MAXM ? (hi > lo ? hi - lo : 1) : 16;
    for (size_t r0 = lo; r0 < hi; r0 += step) {
        size_t r1 = hi - r0 < step ? hi : r0 + step;
        for (size_t i0 = 0; i0 < n; i0 += MAXM) {
            int M = (int)(n - i0 < MAXM ? n - i0 : MAXM);
            for (int r = 0; r < M; r++) {
                xs[r] = x + (i0 + r) * xstride;
                ys[r] = y + (i0 + r) * ystride;
                if (act) a[r] = view((const uint8_t *)act + (i0 + r) * astride, m->cols);
            }
            rows_job j = {m, xs, a, ys, accumulate, i0 == 0 ? ahead : 0, hi};
#if defined(__x86_64__)
            if (vector_loop(&j, r0, r1, M, f)) continue;
#endif
            for (size_t row = r0; row < r1; row++) {
                const uint8_t *rec = record(m, row);
                for (int r = 0; r < M; r++) {
                    float v = portable_row(m, rec, xs[r], &a[r]), *o = ys[r] + row;
                    *o = accumulate ? *o + v : v;
                }
            }
        }
    }
}

void folio_matvec(const folio_matrix *m, size_t lo, size_t hi, const float *x, const void *act, float *y, int accumulate) {
    matvec(m, lo, hi, 1, x, 0, act, 0, y, 0, accumulate, atomic_load_explicit(&vec_features, memory_order_relaxed));
}

void folio_matvec_batch(const folio_matrix *m, size_t lo, size_t hi, size_t n, const float *x, size_t xstride, const void *act, size_t astride,
                        float *y, size_t ystride, int accumulate) {
    matvec(m, lo, hi, n, x, xstride, act, astride, y, ystride, accumulate, atomic_load_explicit(&vec_features, memory_order_relaxed));
}

void folio_matvec_portable(const folio_matrix *m, size_t lo, size_t hi, const float *x, const void *act, float *y, int accumulate) {
    matvec(m, lo, hi, 1, x, 0, act, 0, y, 0, accumulate, 0);
}

int folio_matvec_features(void) { return atomic_load_explicit(&vec_features, memory_order_relaxed); }

void folio_matrix_decode(const folio_matrix *m, size_t lo, size_t hi, float *out) {
    size_t record_size;
    size_t k = m->cols, G = m->group ? k / m->group : 0;
    switch (m->kind) {
    case FOLIO_ROW_F32: record_size = 4 * k; break;
    case FOLIO_ROW_F16: case FOLIO_ROW_BF16: record_size = 2 * k; break;
    case FOLIO_ROW_INT8: record_size = 4 + k; break;
    case FOLIO_ROW_INT8_GROUPS: record_size = 2 * G + k; break;
    case FOLIO_ROW_INT4_GROUPS: record_size = 4 * G + k / 2; break;
    default: record_size = 4 * G + k; break;
    }
    int64_t offsets[64];
    for (size_t r = lo; r < hi; r += 64) {
        size_t n = hi - r < 64 ? hi - r : 64;
        for (size_t i = 0; i < n; i++) offsets[i] = (int64_t)(record(m, r + i) - m->base);
        folio_gather_rows(m->kind, m->group, m->base, offsets, n, k, record_size, out + (r - lo) * k, k, 0);
    }
}

void folio_act_prepare(const float *x, size_t cols, void *act) {
#if defined(__x86_64__)
    if (atomic_load_explicit(&vec_features, memory_order_relaxed) & 4) { act_prepare_avx512(x, cols, act); return; }
#endif
    folio_act_prepare_portable(x, cols, act);
}
