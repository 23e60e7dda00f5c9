#include "folio_matvec.h"
#include "folio_kernels.h"
#include "block_quant.h"
#include <math.h>
#include <float.h>
#include <string.h>
#include <stdlib.h>
#include <stdatomic.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Matrix products of many inputs (a prompt's rows) with integer-coded weights, by integer
   dot products straight from the records: no float32 copy of the weights, and the same
   quantities as the matrix-vector kernels of matvec.c. Each input is quantized per block of
   32 to int16 exactly as folio_act_prepare does (step amax / 32767, or amax / 32639 against
   int4 codes), and each block of a row contributes s · d_b · Σ q_w q_x with the integer sum
   exact, plus m · Σ x over the block for the affine kinds.

   Layout for VNNI's dpwssd (16 int32 lanes, each the sum of two int16 products): the inputs
   are laid out 16 at a time, lane t holding input t's pair of values (2p, 2p + 1) of a block,
   and each weight row's codes are widened to int16 once per call, a pair being broadcast to
   all lanes. So one instruction does 32 multiply-adds of one row against 16 inputs, twice
   what float32's FMA does (16 per instruction), and the integer units scale over the cores
   where float work does not (two vCPUs of one core run sgemm 1.1-1.2x faster than one). */

#define BLOCK 32
#define LANES 16
#define MM_R_MAX 8

static inline size_t mm_blocks(size_t cols) { return (cols + BLOCK - 1) / BLOCK; }
static inline float mm_half(const uint8_t *p) { _Float16 h; memcpy(&h, p, 2); return (float)h; }

/* One group of 16 inputs: [nb][16 pairs][16 lanes] int32 (two int16), then the steps
   [nb][16] and the float sums [nb][16]. */
static inline size_t group_bytes(size_t nb) { return nb * (BLOCK / 2 * LANES * 4 + 2 * LANES * 4); }

size_t folio_mm_inputs_size(size_t n, size_t cols) { return (n + LANES - 1) / LANES * group_bytes(mm_blocks(cols)); }

int folio_mm_levels(int kind) { return kind == FOLIO_ROW_INT4_GROUPS ? 32639 : 32767; }

/* Input t's block b (block_quant.h: the quantization of folio_act_prepare) into its lane:
   the q values as pairs, the step and the float sum. */
static void prepare_block(const float *xt, size_t cols, size_t b, float L, int16_t *q, float *d, float *s, size_t lane) {
    size_t lo = b * BLOCK, cnt = cols - lo < BLOCK ? cols - lo : BLOCK;
    float amax, sum;
    block_stats(xt + lo, cnt, &amax, &sum);
    float inv = block_inverse(amax, L);
    d[b * LANES + lane] = amax / L;
    s[b * LANES + lane] = sum;
    for (size_t j = 0; j < cnt; j++) q[((b * (BLOCK / 2) + j / 2) * LANES + lane) * 2 + (j & 1)] = block_code(xt[lo + j], inv, L);
}

#if defined(__x86_64__)
/* The same block by AVX-512F; its 16 pairs go to their lanes by one scatter. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static void prepare_block_avx512(const float *xt, size_t cols, size_t b, float L,
                                                                                                int16_t *q, float *d, float *s, size_t lane) {
    size_t lo = b * BLOCK, cnt = cols - lo < BLOCK ? cols - lo : BLOCK;
    __m512 v0, v1;
    float amax, sum;
    block_load(xt + lo, cnt, &v0, &v1, &amax, &sum);
    float inv = block_inverse(amax, L);
    d[b * LANES + lane] = amax / L;
    s[b * LANES + lane] = sum;
    __m512i q0 = block_codes(v0, inv, L), q1 = block_codes(v1, inv, L);
    __m512i pairs = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(q0)), _mm512_cvtepi32_epi16(q1), 1);
    const __m512i at = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(LANES));
    _mm512_i32scatter_epi32(q + (b * (BLOCK / 2) * LANES + lane) * 2, at, pairs, 4);
}
#endif

void folio_mm_prepare(int kind, const float *x, size_t n, size_t cols, void *prep) { folio_mm_prepare_part(kind, x, n, cols, prep, 0, n); }

void folio_mm_prepare_part(int kind, const float *x, size_t n, size_t cols, void *prep, size_t t0, size_t t1) {
    size_t nb = mm_blocks(cols);
    const float L = (float)folio_mm_levels(kind);
    t0 = t0 / LANES * LANES;
    t1 = t1 > n ? n : t1;
    if (t1 <= t0) return;
    size_t g0 = t0 / LANES, g1 = (t1 + LANES - 1) / LANES;
    memset((uint8_t *)prep + g0 * group_bytes(nb), 0, (g1 - g0) * group_bytes(nb));
#if defined(__x86_64__)
    int vec = folio_matvec_features() & 4;  /* AVX-512F */
#endif
    for (size_t t = t0; t < t1; t++) {
        uint8_t *g = (uint8_t *)prep + (t / LANES) * group_bytes(nb);
        int16_t *q = (int16_t *)g;
        float *d = (float *)(g + nb * BLOCK / 2 * LANES * 4), *s = d + nb * LANES;
        const float *xt = x + t * cols;
        for (size_t b = 0; b < nb; b++) {
#if defined(__x86_64__)
            if (vec) { prepare_block_avx512(xt, cols, b, L, q, d, s, t % LANES); continue; }
#endif
            prepare_block(xt, cols, b, L, q, d, s, t % LANES);
        }
    }
}

static inline const uint8_t *mm_record(const folio_matrix *m, size_t r) {
    return m->base + (r / m->rows_per_block) * m->block + (r % m->rows_per_block) * m->stride;
}

/* Row r's codes widened to int16 (kp values, zero past cols), its per-block scale and
   minimum (0 for the symmetric kinds). Returns the scale applied after the sums (int8 per
   row: the row's float scale, applied once as the matrix-vector kernel does; else 1). */
static float widen_row(const folio_matrix *m, const uint8_t *rec, int16_t *w, float *sc, float *mn) {
    size_t k = m->cols, nb = mm_blocks(k), G = m->group ? k / m->group : 0, per = m->group / BLOCK;
    memset(w + k, 0, (nb * BLOCK - k) * sizeof *w);
    switch (m->kind) {
    case FOLIO_ROW_INT8: {
        float sw; memcpy(&sw, rec, 4);
        const int8_t *c = (const int8_t *)(rec + 4);
        for (size_t j = 0; j < k; j++) w[j] = c[j];
        for (size_t b = 0; b < nb; b++) { sc[b] = 1; mn[b] = 0; }
        return sw;
    }
    case FOLIO_ROW_INT8_GROUPS: {
        const int8_t *c = (const int8_t *)(rec + 2 * G);
        for (size_t j = 0; j < k; j++) w[j] = c[j];
        for (size_t b = 0; b < nb; b++) { sc[b] = mm_half(rec + 2 * (b / per)); mn[b] = 0; }
        return 1;
    }
    case FOLIO_ROW_INT4_GROUPS: {
        const uint8_t *c = rec + 4 * G;
        for (size_t j = 0; j < k; j++) w[j] = (int16_t)((c[j / 2] >> (4 * (j & 1))) & 15);
        for (size_t b = 0; b < nb; b++) { sc[b] = mm_half(rec + 4 * (b / per)); mn[b] = mm_half(rec + 4 * (b / per) + 2); }
        return 1;
    }
    default: { /* affine8/gN */
        const uint8_t *c = rec + 4 * G;
        for (size_t j = 0; j < k; j++) w[j] = c[j];
        for (size_t b = 0; b < nb; b++) { sc[b] = mm_half(rec + 4 * (b / per)); mn[b] = mm_half(rec + 4 * (b / per) + 2); }
        return 1;
    }
    }
}

#if defined(__x86_64__)
#define MM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))
/* widen_row by AVX-512: the same values (the codes as they are, the halves converted
   exactly); the scalar loops had cost as much as the products at 32 inputs. */
MM_AVX512 static float widen_row_avx512(const folio_matrix *m, const uint8_t *rec, int16_t *w, float *sc, float *mn) {
    size_t k = m->cols, nb = mm_blocks(k), G = m->group ? k / m->group : 0, per = m->group ? m->group / BLOCK : 1;
    memset(w + k, 0, (nb * BLOCK - k) * sizeof *w);
    size_t full = k / BLOCK;
    switch (m->kind) {
    case FOLIO_ROW_INT4_GROUPS: {
        const uint8_t *c = rec + 4 * G;
        const __m128i low = _mm_set1_epi8(0x0F);
        for (size_t b = 0; b < full; b++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(c + b * 16));
            __m128i lo = _mm_and_si128(v, low), hi = _mm_and_si128(_mm_srli_epi16(v, 4), low);
            __m256i codes = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi8(lo, hi)), _mm_unpackhi_epi8(lo, hi), 1);
            _mm512_storeu_si512(w + b * BLOCK, _mm512_cvtepu8_epi16(codes));
        }
        for (size_t g = 0, b = 0; g < G; g++) {
            float s = (float)*(const _Float16 *)(const void *)(rec + 4 * g), mg = (float)*(const _Float16 *)(const void *)(rec + 4 * g + 2);
            for (size_t i = 0; i < per; i++, b++) { sc[b] = s; mn[b] = mg; }
        }
        return 1;
    }
    case FOLIO_ROW_INT8: case FOLIO_ROW_INT8_GROUPS: case FOLIO_ROW_AFFINE8_GROUPS: {
        size_t off = m->kind == FOLIO_ROW_INT8 ? 4 : m->kind == FOLIO_ROW_INT8_GROUPS ? 2 * G : 4 * G;
        const uint8_t *c = rec + off;
        size_t j = 0;
        if (m->kind == FOLIO_ROW_AFFINE8_GROUPS) {
            for (; j + 32 <= k; j += 32) _mm512_storeu_si512(w + j, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c + j))));
            for (; j < k; j++) w[j] = c[j];
        } else {
            for (; j + 32 <= k; j += 32) _mm512_storeu_si512(w + j, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(c + j))));
            for (; j < k; j++) w[j] = (int8_t)c[j];
        }
        if (m->kind == FOLIO_ROW_INT8) {
            float sw; memcpy(&sw, rec, 4);
            for (size_t b = 0; b < nb; b++) { sc[b] = 1; mn[b] = 0; }
            return sw;
        }
        size_t step = m->kind == FOLIO_ROW_INT8_GROUPS ? 2 : 4;
        for (size_t g = 0, b = 0; g < G; g++) {
            float s = (float)*(const _Float16 *)(const void *)(rec + step * g);
            float mg = step == 4 ? (float)*(const _Float16 *)(const void *)(rec + 4 * g + 2) : 0;
            for (size_t i = 0; i < per; i++, b++) { sc[b] = s; mn[b] = mg; }
        }
        return 1;
    }
    }
    return widen_row(m, rec, w, sc, mn);
}
#endif

static inline int mm_kind_ok(const folio_matrix *m) {
    switch (m->kind) {
    case FOLIO_ROW_INT8: return 1;
    case FOLIO_ROW_INT8_GROUPS: case FOLIO_ROW_INT4_GROUPS: case FOLIO_ROW_AFFINE8_GROUPS:
        return m->group >= BLOCK && m->group % BLOCK == 0 && m->cols % m->group == 0;
    }
    return 0;
}

/* The plain version: the same sums per block, one lane at a time. */
static void mm_rows_portable(size_t r0, size_t rr, const int16_t *w, size_t kp, const float *sc, const float *mn,
                             const float *post, size_t n, const void *prep, float *y, size_t ystride, int accumulate) {
    size_t nb = kp / BLOCK;
    for (size_t t = 0; t < n; t++) {
        const uint8_t *g = (const uint8_t *)prep + (t / LANES) * group_bytes(nb);
        const int16_t *q = (const int16_t *)g;
        const float *d = (const float *)(g + nb * BLOCK / 2 * LANES * 4), *s = d + nb * LANES;
        size_t lane = t % LANES;
        for (size_t r = 0; r < rr; r++) {
            float acc = 0;
            for (size_t b = 0; b < nb; b++) {
                int32_t isum = 0;
                for (size_t j = 0; j < BLOCK; j++) isum += (int32_t)w[r * kp + b * BLOCK + j] * q[((b * (BLOCK / 2) + j / 2) * LANES + lane) * 2 + (j & 1)];
                acc += (float)isum * (d[b * LANES + lane] * sc[r * nb + b]);
                acc += s[b * LANES + lane] * mn[r * nb + b];
            }
            float v = acc * post[r], *o = y + t * ystride + r0 + r;
            *o = accumulate ? *o + v : v;
        }
    }
}

#if defined(__x86_64__)
/* tune=znver4: with the generic tuning clang splits each dpwssd into pmaddwd + paddd (two
   instructions for one), which halves what this loop can do on any CPU. */
#define MM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,tune=znver4")))
#ifndef MM_R
#define MM_R 4
#endif
#ifndef MM_T
#define MM_T 4
#endif

/* MM_R rows against up to MM_T groups of 16 inputs: the int32 sums of a block stay in
   registers (MM_R x MM_T of them) and are scaled into float accumulators kept in memory,
   touched once per block. */
MM_VNNI static inline __attribute__((always_inline)) void mm_tile(const int16_t *w, size_t kp, const float *sc, const float *mn, const int affine,
                                                                   const uint8_t *g0, size_t gstride, const int T, float f[MM_R][MM_T][LANES]) {
    size_t nb = kp / BLOCK;
    for (int r = 0; r < MM_R; r++) for (int t = 0; t < T; t++) _mm512_store_ps(f[r][t], _mm512_setzero_ps());
    for (size_t b = 0; b < nb; b++) {
        __m512i acc[MM_R][MM_T];
        for (int r = 0; r < MM_R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_si512();
        const uint8_t *xb = g0 + b * (BLOCK / 2) * LANES * 4;
        for (int p = 0; p < BLOCK / 2; p++) {
            __m512i xv[MM_T];
            for (int t = 0; t < T; t++) xv[t] = _mm512_load_si512(xb + t * gstride + p * LANES * 4);
            for (int r = 0; r < MM_R; r++) {
                int32_t pair; memcpy(&pair, w + r * kp + b * BLOCK + 2 * p, 4);
                __m512i wv = _mm512_set1_epi32(pair);
                for (int t = 0; t < T; t++) acc[r][t] = _mm512_dpwssd_epi32(acc[r][t], xv[t], wv);
            }
        }
        for (int t = 0; t < T; t++) {
            const float *d = (const float *)(g0 + t * gstride + nb * BLOCK / 2 * LANES * 4);
            __m512 dv = _mm512_load_ps(d + b * LANES);
            for (int r = 0; r < MM_R; r++) {
                __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][t]), _mm512_mul_ps(dv, _mm512_set1_ps(sc[r * nb + b])), _mm512_load_ps(f[r][t]));
                if (affine) v = _mm512_fmadd_ps(_mm512_load_ps(d + nb * LANES + b * LANES), _mm512_set1_ps(mn[r * nb + b]), v);
                _mm512_store_ps(f[r][t], v);
            }
        }
    }
}

MM_VNNI static void mm_rows_vnni(size_t r0, size_t rr, const int16_t *w, size_t kp, const float *sc, const float *mn, int affine,
                                 const float *post, size_t n, const void *prep, float *y, size_t ystride, int accumulate) {
    size_t nb = kp / BLOCK, groups = (n + LANES - 1) / LANES, gb = group_bytes(nb);
    _Alignas(64) float f[MM_R][MM_T][LANES];
    for (size_t g = 0; g < groups; g += MM_T) {
        const uint8_t *g0 = (const uint8_t *)prep + g * gb;
        int T = groups - g < MM_T ? (int)(groups - g) : MM_T;
        /* T a constant in each call, so that the loops over it unroll into registers */
        if (affine) {
            switch (T) { case 1: mm_tile(w, kp, sc, mn, 1, g0, gb, 1, f); break; case 2: mm_tile(w, kp, sc, mn, 1, g0, gb, 2, f); break;
                         case 3: mm_tile(w, kp, sc, mn, 1, g0, gb, 3, f); break; default: mm_tile(w, kp, sc, mn, 1, g0, gb, MM_T, f); }
        } else {
            switch (T) { case 1: mm_tile(w, kp, sc, mn, 0, g0, gb, 1, f); break; case 2: mm_tile(w, kp, sc, mn, 0, g0, gb, 2, f); break;
                         case 3: mm_tile(w, kp, sc, mn, 0, g0, gb, 3, f); break; default: mm_tile(w, kp, sc, mn, 0, g0, gb, MM_T, f); }
        }
        for (int t = 0; t < T; t++) {
            size_t base = (g + t) * LANES, cnt = n - base < LANES ? n - base : LANES;
            for (size_t r = 0; r < rr; r++) {
                for (size_t i = 0; i < cnt; i++) {
                    float v = f[r][t][i] * post[r], *o = y + (base + i) * ystride + r0 + r;
                    *o = accumulate ? *o + v : v;
                }
            }
        }
    }
}
#endif

static float widen_row_fast(const folio_matrix *m, const uint8_t *rec, int16_t *w, float *sc, float *mn) {
#if defined(__x86_64__)
    return widen_row_avx512(m, rec, w, sc, mn);
#else
    return widen_row(m, rec, w, sc, mn);
#endif
}

int folio_mm_vector(void) { return (folio_matvec_features() & 5) == 5; }

int folio_mm_supported(const folio_matrix *m) { return mm_kind_ok(m); }

int16_t folio_mm_input(const void *prep, size_t cols, size_t t, size_t j, float *step, float *sum) {
    size_t nb = mm_blocks(cols), b = j / BLOCK, i = j % BLOCK, lane = t % LANES;
    const uint8_t *g = (const uint8_t *)prep + (t / LANES) * group_bytes(nb);
    const float *d = (const float *)(g + nb * BLOCK / 2 * LANES * 4);
    *step = d[b * LANES + lane];
    *sum = d[nb * LANES + b * LANES + lane];
    return ((const int16_t *)g)[((b * (BLOCK / 2) + i / 2) * LANES + lane) * 2 + (i & 1)];
}

static int mm(const folio_matrix *m, size_t lo, size_t hi, size_t n, const void *prep, float *y, size_t ystride, int accumulate, int vec);

int folio_mm(const folio_matrix *m, size_t lo, size_t hi, size_t n, const void *prep, float *y, size_t ystride, int accumulate) {
    return mm(m, lo, hi, n, prep, y, ystride, accumulate, folio_mm_vector());
}

int folio_mm_portable(const folio_matrix *m, size_t lo, size_t hi, size_t n, const void *prep, float *y, size_t ystride, int accumulate) {
    return mm(m, lo, hi, n, prep, y, ystride, accumulate, 0);
}

static int mm(const folio_matrix *m, size_t lo, size_t hi, size_t n, const void *prep, float *y, size_t ystride, int accumulate, int vec) {
    if (!mm_kind_ok(m)) return -1;
    if (hi <= lo || n == 0) return 0;
    size_t k = m->cols, nb = mm_blocks(k), kp = nb * BLOCK;
#if defined(__x86_64__)
    const int R = MM_R;
#else
    const int R = 4;
#endif
    int16_t *w = aligned_alloc(64, ((size_t)R * kp * sizeof(int16_t) + 63) & ~(size_t)63);
    float *sc = malloc(sizeof(float) * R * nb), *mn = malloc(sizeof(float) * R * nb);
    if (!w || !sc || !mn) { free(w); free(sc); free(mn); return -2; }
    int affine = m->kind == FOLIO_ROW_INT4_GROUPS || m->kind == FOLIO_ROW_AFFINE8_GROUPS;
    float post[MM_R_MAX];
    for (size_t r0 = lo; r0 < hi; r0 += (size_t)R) {
        size_t rr = hi - r0 < (size_t)R ? hi - r0 : (size_t)R;
        for (size_t r = 0; r < (size_t)R; r++) {
            if (r < rr) post[r] = vec ? widen_row_fast(m, mm_record(m, r0 + r), w + r * kp, sc + r * nb, mn + r * nb)
                                  : widen_row(m, mm_record(m, r0 + r), w + r * kp, sc + r * nb, mn + r * nb);
            else { memset(w + r * kp, 0, kp * sizeof *w); memset(sc + r * nb, 0, nb * sizeof *sc); memset(mn + r * nb, 0, nb * sizeof *mn); post[r] = 0; }
        }
#if defined(__x86_64__)
        if (vec) { mm_rows_vnni(r0, rr, w, kp, sc, mn, affine, post, n, prep, y, ystride, accumulate); continue; }
#endif
        (void)vec;
        mm_rows_portable(r0, rr, w, kp, sc, mn, post, n, prep, y, ystride, accumulate);
    }
    free(w); free(sc); free(mn);
    return 0;
}
