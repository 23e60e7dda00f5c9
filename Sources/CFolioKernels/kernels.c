#include "folio_kernels.h"
#include <string.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <time.h>

/* Explicit 8-lane vectors (clang vector extensions): the loops need no fast-math to
   vectorize, and the rounding trick (v + 1.5*2^23) - 1.5*2^23 stays exact because nothing
   is reassociated. Hot kernels are compiled twice (AVX2 and baseline) and chosen at load
   time by the dynamic linker (target_clones). */

typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32), aligned(4)));
typedef uint32_t v8u __attribute__((vector_size(32), aligned(4)));
typedef double v8d __attribute__((vector_size(64), aligned(8)));

#define MAGIC 12582912.0f /* 1.5 * 2^23 */
/* The clones are chosen by an ifunc resolver, which runs before a sanitizer's runtime is up;
   instrumented (ThreadSanitizer) resolvers crash there, so sanitized builds use one version. */
#if defined(__has_feature)
#  if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#    define FOLIO_NO_CLONES 1
#  endif
#endif
#ifdef FOLIO_NO_CLONES
#  define CLONES
#  define ROW_CLONES
#else
#  define CLONES __attribute__((target_clones("avx2", "default")))
/* Row decoders also get an AVX-512 version: twice the values per instruction for lookups. */
#  define ROW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

/* Macros rather than functions: 32-byte vector arguments would change the baseline ABI. */
#define LOAD8(p) ({ v8f v_; memcpy(&v_, (p), 32); v_; })
#define SPLAT(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
#define HSUM(v) ({ v8f h_ = (v); ((h_[0] + h_[1]) + (h_[2] + h_[3])) + ((h_[4] + h_[5]) + (h_[6] + h_[7])); })
#define VCLAMP(v, lo, hi) __builtin_elementwise_min(__builtin_elementwise_max((v), (lo)), (hi))
#define VROUND(v) (((v) + SPLAT(MAGIC)) - SPLAT(MAGIC))

static inline float clampf(float v, float lo, float hi) { v = v < lo ? lo : v; return v > hi ? hi : v; }
static inline float roundf_even(float v) { return (v + MAGIC) - MAGIC; }
static inline uint32_t bits(float v) { uint32_t u; memcpy(&u, &v, 4); return u; }
static inline float from_bits(uint32_t u) { float v; memcpy(&v, &u, 4); return v; }

CLONES float folio_max_abs(const float *x, size_t n) {
    v8u m = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8u a; memcpy(&a, x + i, 32);
        a &= 0x7FFFFFFFu;
        m = __builtin_elementwise_max(m, a);
    }
    uint32_t r = 0;
    for (int k = 0; k < 8; k++) r = m[k] > r ? m[k] : r;
    for (; i < n; i++) { uint32_t a = bits(x[i]) & 0x7FFFFFFFu; r = a > r ? a : r; }
    return r > 0x7F800000u ? __builtin_nanf("") : from_bits(r);
}

/* Integer keys that order like the floats (no NaN here: callers check max |x| first). */
#define KEY8(i) ((i) ^ (((i) >> 31) & 0x7FFFFFFF))
static inline int32_t key1(float v) { int32_t i = (int32_t)bits(v); return i ^ ((i >> 31) & 0x7FFFFFFF); }
static inline float unkey(int32_t k) { return from_bits((uint32_t)(k ^ ((k >> 31) & 0x7FFFFFFF))); }

CLONES void folio_min_max(const float *x, size_t n, float *lo, float *hi) {
    v8i a = {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX};
    v8i b = -a - 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8i v; memcpy(&v, x + i, 32);
        v8i k = KEY8(v);
        a = __builtin_elementwise_min(a, k);
        b = __builtin_elementwise_max(b, k);
    }
    int32_t ra = INT32_MAX, rb = INT32_MIN;
    for (int k = 0; k < 8; k++) { ra = a[k] < ra ? a[k] : ra; rb = b[k] > rb ? b[k] : rb; }
    for (; i < n; i++) { int32_t k = key1(x[i]); ra = k < ra ? k : ra; rb = k > rb ? k : rb; }
    *lo = n ? unkey(ra) : 0;
    *hi = n ? unkey(rb) : 0;
}

CLONES void folio_sym_pass(const float *x, size_t n, float s, double *err, double *sxq, double *sqq) {
    const float inv = 1.0f / s;
    const v8f vinv = SPLAT(inv), vs = SPLAT(s), lo = SPLAT(-127.0f), hi = SPLAT(127.0f);
    v8f e = {0}, xq = {0}, qq = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v = LOAD8(x + i);
        v8f q = VROUND(VCLAMP(v * vinv, lo, hi));
        v8f d = v - q * vs;
        e += d * d; xq += v * q; qq += q * q;
    }
    double te = HSUM(e), txq = HSUM(xq), tqq = HSUM(qq);
    for (; i < n; i++) {
        float q = roundf_even(clampf(x[i] * inv, -127.0f, 127.0f));
        float d = x[i] - q * s;
        te += d * d; txq += x[i] * q; tqq += q * q;
    }
    *err = te; *sxq = txq; *sqq = tqq;
}

CLONES void folio_sym_codes(const float *x, size_t n, float s, int8_t *codes) {
    const float inv = s > 0 ? 1.0f / s : 0.0f;
    const v8f vinv = SPLAT(inv), lo = SPLAT(-127.0f), hi = SPLAT(127.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8i q = __builtin_convertvector(VROUND(VCLAMP(LOAD8(x + i) * vinv, lo, hi)), v8i);
        for (int k = 0; k < 8; k++) codes[i + k] = (int8_t)q[k];
    }
    for (; i < n; i++) codes[i] = (int8_t)(int)roundf_even(clampf(x[i] * inv, -127.0f, 127.0f));
}

/* One round of the affine search for (s, m) as stored (already float16 values): the squared
   error of the codes round(clamp((x - m) / s, 0, top)), and the sums of the least-squares
   refit. */
static inline __attribute__((always_inline))
void affine_pass(const float *x, size_t n, float s, float m, float top,
                 double *err, double *sq, double *sqq, double *sx, double *sxq) {
    const float inv = 1.0f / s;
    const v8f vinv = SPLAT(inv), vs = SPLAT(s), vm = SPLAT(m), lo = SPLAT(0.0f), hi = SPLAT(top);
    v8f e = {0}, a = {0}, b = {0}, c = {0}, d2 = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v = LOAD8(x + i);
        v8f q = VROUND(VCLAMP((v - vm) * vinv, lo, hi));
        v8f d = v - (vs * q + vm);
        e += d * d; a += q; b += q * q; c += v; d2 += v * q;
    }
    double te = HSUM(e), ta = HSUM(a), tb = HSUM(b), tc = HSUM(c), td = HSUM(d2);
    for (; i < n; i++) {
        float q = roundf_even(clampf((x[i] - m) * inv, 0.0f, top));
        float d = x[i] - (s * q + m);
        te += d * d; ta += q; tb += q * q; tc += x[i]; td += x[i] * q;
    }
    *err = te; *sq = ta; *sqq = tb; *sx = tc; *sxq = td;
}

/* v rounded to the nearest float16 value (ties to even; beyond 65504 to infinity), as a float:
   the same as (float)(_Float16)v for every float (checked exhaustively over all 2^32 inputs),
   without the software conversion calls that the x86 targets without F16C make. */
static inline float half_round(float v) {
    const uint32_t u = bits(v), sign = u & 0x80000000u;
    uint32_t a = u & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) return v;              /* infinity, NaN */
    if (a < 0x38800000u) {                       /* below 2^-14: multiples of 2^-24 */
        const float r = ((from_bits(a) * 16777216.0f) + MAGIC) - MAGIC;
        return from_bits(bits(r * 5.9604644775390625e-8f) | sign);
    }
    a = (a + 0xFFFu + ((a >> 13) & 1u)) & ~0x1FFFu; /* 10 mantissa bits, ties to even */
    if (a > 0x477FE000u) a = 0x7F800000u;        /* beyond 65504 */
    return from_bits(a | sign);
}

typedef struct { double err; float s, m; } affine_candidate;

typedef struct {
    const float *x;
    size_t n;
    float top;
    double best_err;
    float best_s, best_m;
} affine_search;

/* Rounds (s, m) to float16, measures them (keeping the best pair seen) and refits. Returns 0
   when the pair is unusable or its refit is unusable or rounds to the same pair. */
static inline __attribute__((always_inline))
int affine_round(affine_search *st, float s, float m, affine_candidate *next) {
    const float s16 = half_round(s), m16 = half_round(m);
    if (!(s16 > 0) || !__builtin_isfinite(s16) || !__builtin_isfinite(m16)) return 0;
    double err, sq, sqq, sx, sxq;
    affine_pass(st->x, st->n, s16, m16, st->top, &err, &sq, &sqq, &sx, &sxq);
    if (err < st->best_err) { st->best_err = err; st->best_s = s16; st->best_m = m16; }
    const double count = (double)st->n;
    const double det = count * sqq - sq * sq;
    if (!(det > 0)) return 0;
    const double ns = (count * sxq - sq * sx) / det;
    const double nm = (sx - ns * sq) / count;
    if (!(ns > 0) || !__builtin_isfinite(ns) || !__builtin_isfinite(nm)) return 0;
    if (half_round((float)ns) == s16 && half_round((float)nm) == m16) return 0;
    next->err = err; next->s = (float)ns; next->m = (float)nm;
    return 1;
}

#define AFFINE_STEPS 5
#define AFFINE_CONTINUED 3
#define AFFINE_MORE_ROUNDS 3

CLONES int folio_affine_search(const float *x, size_t n, float lo, float hi, float top,
                               float *scale, float *min) {
    static const float steps[AFFINE_STEPS] = {0.0f, 0.025f, 0.05f, 0.075f, 0.1f};
    affine_search st = { x, n, top, __builtin_inf(), 0.0f, 0.0f };
    const float range = hi - lo;
    affine_candidate kept[AFFINE_CONTINUED];
    int nk = 0;
    for (int a = 0; a < AFFINE_STEPS; a++) {
        for (int b = 0; b < AFFINE_STEPS; b++) {
            const float m = lo + steps[a] * range;
            affine_candidate r;
            if (!affine_round(&st, ((hi - steps[b] * range) - m) / top, m, &r)) continue;
            if (nk == AFFINE_CONTINUED && !(r.err < kept[nk - 1].err)) continue;
            int at = nk < AFFINE_CONTINUED ? nk : AFFINE_CONTINUED - 1;
            while (at > 0 && r.err < kept[at - 1].err) { kept[at] = kept[at - 1]; at--; }
            kept[at] = r;
            if (nk < AFFINE_CONTINUED) nk++;
        }
    }
    for (int k = 0; k < nk; k++) {
        affine_candidate c = kept[k];
        for (int round = 0; round < AFFINE_MORE_ROUNDS; round++) {
            affine_candidate r;
            if (!affine_round(&st, c.s, c.m, &r)) break;
            c = r;
        }
    }
    if (st.best_err == __builtin_inf()) return 0;
    *scale = st.best_s; *min = st.best_m;
    return 1;
}

CLONES void folio_affine_codes(const float *x, size_t n, float s, float m, float top, uint8_t *codes) {
    const float inv = 1.0f / s;
    const v8f vinv = SPLAT(inv), vm = SPLAT(m), lo = SPLAT(0.0f), hi = SPLAT(top);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8i q = __builtin_convertvector(VROUND(VCLAMP((LOAD8(x + i) - vm) * vinv, lo, hi)), v8i);
        for (int k = 0; k < 8; k++) codes[i + k] = (uint8_t)q[k];
    }
    for (; i < n; i++) codes[i] = (uint8_t)(int)roundf_even(clampf((x[i] - m) * inv, 0.0f, top));
}

CLONES void folio_error_stats(const float *a, const float *b, size_t n, double sums[4], double *max_abs) {
    /* Double accumulators: values may be large (integer tensors compared by diff). */
    v8d se = {0}, sa = {0}, sb = {0}, sab = {0};
    v8u mx = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f x = LOAD8(a + i), y = LOAD8(b + i);
        v8f d = x - y;
        v8u ad; memcpy(&ad, &d, 32);
        mx = __builtin_elementwise_max(mx, ad & 0x7FFFFFFFu);
        v8d xd = __builtin_convertvector(x, v8d), yd = __builtin_convertvector(y, v8d), dd = xd - yd;
        se += dd * dd; sa += xd * xd; sb += yd * yd; sab += xd * yd;
    }
    double tse = 0, tsa = 0, tsb = 0, tsab = 0;
    for (int k = 0; k < 8; k++) { tse += se[k]; tsa += sa[k]; tsb += sb[k]; tsab += sab[k]; }
    uint32_t m = 0;
    for (int k = 0; k < 8; k++) m = mx[k] > m ? mx[k] : m;
    for (; i < n; i++) {
        float d = a[i] - b[i];
        uint32_t ad = bits(d) & 0x7FFFFFFFu;
        m = ad > m ? ad : m;
        double x = a[i], y = b[i], dd = x - y;
        tse += dd * dd; tsa += x * x; tsb += y * y; tsab += x * y;
    }
    sums[0] += tse; sums[1] += tsa; sums[2] += tsb; sums[3] += tsab;
    if (*max_abs != *max_abs || m > 0x7F800000u) *max_abs = __builtin_nan("");
    else if ((double)from_bits(m) > *max_abs) *max_abs = from_bits(m);
}

CLONES void folio_bf16_to_f32(const uint16_t *src, size_t n, float *dst) {
    uint32_t *out = (uint32_t *)dst;
    for (size_t i = 0; i < n; i++) out[i] = (uint32_t)src[i] << 16;
}

/* ---- Row gathers (embedding lookups) ---- */

#pragma clang fp contract(off)

/* Scattered rows are gathered in chunks of about GATHER_AHEAD records (whole tokens when
   rows are summed per token): while chunk k is decoded, every cache line of chunk k + 1 has
   already been asked for with a prefetch into L2 (prefetcht1). Measured on this AMD EPYC
   (Zen 4) with 12 random rows per token, 2 MiB pages, in a throwaway C harness: int4/g32
   25 M rows/s and int8 21 M against 16.7 M and 12.3 M for the earlier scheme (one load per
   line of a chunk, then its decoding: the loads hold up retirement so memory and arithmetic
   never overlap); prefetches into L1 (prefetcht0) were slower than either, 11-13 M, and a
   load-based lookahead interleaved with decoding 3.5 M. Through `folio bench lookups
   --resident`, chunks of 24 to 144 records were within the machine's noise for int4, and
   for int8 96 was among the fastest (about 21 M rows/s, 1 thread). */
#define GATHER_AHEAD_MAX 512
/* Records per chunk and the prefetch hint (3: prefetcht0, 2: t1, 1: t2, 0: nta, -1: none);
   set at load time (folio_detect_cpu), overridable by FOLIO_GATHER_AHEAD and
   FOLIO_PREFETCH (t0, t1, t2, nta, none) for measurements. */
static size_t gather_ahead = 96;
static int prefetch_hint = 2;
/* How a chunk's records are brought in: see the comment before adapt_segment. */
enum { GATHER_ADAPTIVE = 0, GATHER_PREFETCH = 1, GATHER_TOUCH = 2 };
static int gather_mode = GATHER_ADAPTIVE;

static inline void prefetch_record(const uint8_t *p, size_t size) {
    const uint8_t *q = (const uint8_t *)((uintptr_t)p & ~(uintptr_t)63);
    switch (prefetch_hint) {
    case 3: for (; q < p + size; q += 64) __builtin_prefetch(q, 0, 3); break;
    case 2: for (; q < p + size; q += 64) __builtin_prefetch(q, 0, 2); break;
    case 1: for (; q < p + size; q += 64) __builtin_prefetch(q, 0, 1); break;
    case 0: for (; q < p + size; q += 64) __builtin_prefetch(q, 0, 0); break;
    default: break;
    }
}

static inline float half_to_float(const uint8_t *p) {
    _Float16 h; memcpy(&h, p, 2); return (float)h;
}

#define STORE_OR_ADD(o, v) do { if (acc) (o) += (v); else (o) = (v); } while (0)

ROW_CLONES static void row_int8(const uint8_t *rec, size_t width, float *o, int acc) {
    float s; memcpy(&s, rec, 4);
    const int8_t *c = (const int8_t *)(rec + 4);
    if (acc) { for (size_t j = 0; j < width; j++) o[j] += s * (float)c[j]; }
    else     { for (size_t j = 0; j < width; j++) o[j] = s * (float)c[j]; }
}

ROW_CLONES static void row_int8_groups(const uint8_t *rec, size_t width, size_t group, float *o, int acc) {
    size_t groups = width / group;
    const int8_t *c = (const int8_t *)(rec + 2 * groups);
    for (size_t g = 0; g < groups; g++) {
        float s = half_to_float(rec + 2 * g);
        const int8_t *cg = c + g * group; float *og = o + g * group;
        if (acc) { for (size_t j = 0; j < group; j++) og[j] += s * (float)cg[j]; }
        else     { for (size_t j = 0; j < group; j++) og[j] = s * (float)cg[j]; }
    }
}

#if defined(__x86_64__) && !defined(FOLIO_NO_CLONES)
#include <immintrin.h>
/* int4 groups with explicit AVX-512: 8 packed bytes -> 16 values in order (low nibble first)
   by interleaving the nibbles, widened to 16 int32 lanes; (q * s) + m as a multiply and an
   add (no FMA), exactly as the scalar code. */
__attribute__((target("avx512f,f16c"))) static void row_int4_groups_avx512(const uint8_t *rec, size_t width, size_t group, float *o, int acc) {
    size_t groups = width / group;
    const uint8_t *packed = rec + 4 * groups;
    const __m128i mask = _mm_set1_epi8(0x0F);
    for (size_t g = 0; g < groups; g++) {
        uint16_t hs, hm;
        memcpy(&hs, rec + 4 * g, 2); memcpy(&hm, rec + 4 * g + 2, 2);
        __m512 s = _mm512_set1_ps(_cvtsh_ss(hs)), m = _mm512_set1_ps(_cvtsh_ss(hm));
        const uint8_t *b = packed + g * group / 2;
        float *og = o + g * group;
        for (size_t k = 0; k < group; k += 32) {
            __m128i bytes = _mm_loadu_si128((const __m128i *)(b + k / 2));
            __m128i lo = _mm_and_si128(bytes, mask), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
            __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
            __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi8(lo, hi)));
            __m512 r0 = _mm512_add_ps(_mm512_mul_ps(f0, s), m), r1 = _mm512_add_ps(_mm512_mul_ps(f1, s), m);
            if (acc) {
                r0 = _mm512_add_ps(_mm512_loadu_ps(og + k), r0);
                r1 = _mm512_add_ps(_mm512_loadu_ps(og + k + 16), r1);
            }
            _mm512_storeu_ps(og + k, r0);
            _mm512_storeu_ps(og + k + 16, r1);
        }
    }
}

/* int8 groups with explicit AVX-512 (the compiler's vectorized loop of one 32-value group
   at a time took a quarter of a 1B int8 prefill): s * q as the scalar code computes it. */
__attribute__((target("avx512f,f16c"))) static void row_int8_groups_avx512(const uint8_t *rec, size_t width, size_t group, float *o, int acc) {
    size_t groups = width / group;
    const int8_t *c = (const int8_t *)(rec + 2 * groups);
    for (size_t g = 0; g < groups; g++) {
        uint16_t hs;
        memcpy(&hs, rec + 2 * g, 2);
        __m512 s = _mm512_set1_ps(_cvtsh_ss(hs));
        const int8_t *cg = c + g * group;
        float *og = o + g * group;
        for (size_t k = 0; k < group; k += 16) {
            __m512 r = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(cg + k)))), s);
            if (acc) r = _mm512_add_ps(_mm512_loadu_ps(og + k), r);
            _mm512_storeu_ps(og + k, r);
        }
    }
}

/* One token's rows of several tables summed with the accumulators in registers (128 columns
   at a time), the output written once. Bit for bit the per-row decoders' result: every row
   is decoded as s*q (+ m) in float32 and added in table order.
   int4: the 16 values a group can decode to, fl32(fl32(s*q) + m) for q = 0...15, form one
   vector; each code then picks its value with one permute (whose index uses only the low 4
   bits of a lane, so a byte with both nibbles serves as the index of its low nibble and,
   shifted right by 4, of its high one). */
#define ACC8(op) do { op(0); op(1); op(2); op(3); op(4); op(5); op(6); op(7); } while (0)
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static inline __m512 int4_table(const uint8_t *rec, size_t g) {
    uint16_t hs, hm;
    memcpy(&hs, rec + 4 * g, 2); memcpy(&hm, rec + 4 * g + 2, 2);
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_add_ps(_mm512_mul_ps(iota, _mm512_set1_ps(_cvtsh_ss(hs))), _mm512_set1_ps(_cvtsh_ss(hm)));
}
/* The sums are kept in two registers per 32 columns, one for the even columns (low
   nibbles) and one for the odd ones (high nibbles), so that a code byte needs no
   interleaving: widened once to 32-bit lanes it indexes its low nibble, shifted right by 4
   its high one. The columns are put back in order once per token, when stored. */
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static inline void store_interleaved(float *o, __m512 even, __m512 odd) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_storeu_ps(o, _mm512_permutex2var_ps(even, lo, odd));
    _mm512_storeu_ps(o + 16, _mm512_permutex2var_ps(even, hi, odd));
}
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static inline void load_deinterleaved(const float *o, __m512 *even, __m512 *odd) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 a = _mm512_loadu_ps(o), b = _mm512_loadu_ps(o + 16);
    *even = _mm512_permutex2var_ps(a, ev, b);
    *odd = _mm512_permutex2var_ps(a, od, b);
}
/* Even and odd values of 32 columns from their 16 packed bytes. */
#define INT4_EO(b, table, ev, od) do { \
    __m512i i_ = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b))); \
    __m512 t_ = (table); \
    ev = _mm512_permutexvar_ps(i_, t_); od = _mm512_permutexvar_ps(_mm512_srli_epi32(i_, 4), t_); } while (0)

__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static void sum_int4_avx512(const uint8_t *const *recs, size_t n, size_t width, size_t group, float *out, int acc) {
    size_t groups = width / group, c = 0;
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; c + 128 <= width; c += 128) {
        __m512 a0, a1, a2, a3, a4, a5, a6, a7, x0, x1, x2, x3, x4, x5, x6, x7;
        int first = !acc;
        if (acc) {
            load_deinterleaved(out + c, &a0, &a1); load_deinterleaved(out + c + 32, &a2, &a3);
            load_deinterleaved(out + c + 64, &a4, &a5); load_deinterleaved(out + c + 96, &a6, &a7);
        }
        /* The block's 32-column pieces lie in groups g0 + d0...d3 (d < 4 as group >= 32):
           their scales and minimums, 8 halves from g0 on, are widened in one instruction and
           picked by index. Reading 16 bytes there stays inside the record, since the codes
           (width / 2 >= 16 bytes) follow the scales. */
        size_t g0 = c / group;
        const __m512i s0 = _mm512_set1_epi32((int)(2 * (c / group - g0))), s1 = _mm512_set1_epi32((int)(2 * ((c + 32) / group - g0)));
        const __m512i s2 = _mm512_set1_epi32((int)(2 * ((c + 64) / group - g0))), s3 = _mm512_set1_epi32((int)(2 * ((c + 96) / group - g0)));
        const __m512i one = _mm512_set1_epi32(1);
        for (size_t t = 0; t < n; t++) {
            const uint8_t *rec = recs[t], *b = rec + 4 * groups + c / 2;
            __m512 sm = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(rec + 4 * g0))));
#define TABLE(si) _mm512_add_ps(_mm512_mul_ps(iota, _mm512_permutexvar_ps(si, sm)), _mm512_permutexvar_ps(_mm512_add_epi32(si, one), sm))
            INT4_EO(b, TABLE(s0), x0, x1);
            INT4_EO(b + 16, TABLE(s1), x2, x3);
            INT4_EO(b + 32, TABLE(s2), x4, x5);
            INT4_EO(b + 48, TABLE(s3), x6, x7);
#undef TABLE
#define ADD_X(i) a##i = first ? x##i : _mm512_add_ps(a##i, x##i)
            ACC8(ADD_X);
            first = 0;
        }
        store_interleaved(out + c, a0, a1); store_interleaved(out + c + 32, a2, a3);
        store_interleaved(out + c + 64, a4, a5); store_interleaved(out + c + 96, a6, a7);
    }
    for (; c < width; c += 32) {
        __m512 a0, a1, x0, x1;
        int first = !acc;
        if (acc) load_deinterleaved(out + c, &a0, &a1);
        for (size_t t = 0; t < n; t++) {
            const uint8_t *rec = recs[t];
            INT4_EO(rec + 4 * groups + c / 2, int4_table(rec, c / group), x0, x1);
            ADD_X(0); ADD_X(1);
            first = 0;
        }
        store_interleaved(out + c, a0, a1);
    }
}

/* int8 with one float32 scale per row. */
#define LOAD_ACC(i) a##i = _mm512_loadu_ps(out + c + 16 * i)
#define STORE_ACC(i) _mm512_storeu_ps(out + c + 16 * i, a##i)
__attribute__((target("avx512f,avx512bw,avx512vl,f16c")))
static void sum_int8_avx512(const uint8_t *const *recs, size_t n, size_t width, float *out, int acc) {
#define INT8_16(p, s) _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p)))), s)
    size_t c = 0;
    for (; c + 128 <= width; c += 128) {
        __m512 a0, a1, a2, a3, a4, a5, a6, a7, x0, x1, x2, x3, x4, x5, x6, x7;
        int first = !acc;
        if (acc) ACC8(LOAD_ACC);
        for (size_t t = 0; t < n; t++) {
            float sf; memcpy(&sf, recs[t], 4);
            const __m512 s = _mm512_set1_ps(sf);
            const uint8_t *q = recs[t] + 4 + c;
#define DEC8(i) x##i = INT8_16(q + 16 * i, s)
            ACC8(DEC8);
            ACC8(ADD_X);
            first = 0;
        }
        ACC8(STORE_ACC);
    }
    for (; c < width; c += 16) {
        size_t left = width - c < 16 ? width - c : 16;
        __mmask16 m = (__mmask16)((1u << left) - 1);
        __m512 a0 = acc ? _mm512_maskz_loadu_ps(m, out + c) : _mm512_setzero_ps(), x0;
        int first = !acc;
        for (size_t t = 0; t < n; t++) {
            float sf; memcpy(&sf, recs[t], 4);
            x0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, recs[t] + 4 + c))), _mm512_set1_ps(sf));
            ADD_X(0);
            first = 0;
        }
        _mm512_mask_storeu_ps(out + c, m, a0);
    }
}
#undef LOAD_ACC
#undef ADD_X
#undef STORE_ACC
#undef DEC8
/* Set once at load time; folio_kernels_use_avx512 may clear them (tests of the portable
   paths) while other threads read them, hence relaxed atomics. */
static _Atomic int have_avx512, have_avx512bw;
void folio_kernels_use_avx512(int on) {
    __builtin_cpu_init();
    int f = on && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("f16c");
    atomic_store_explicit(&have_avx512, f, memory_order_relaxed);
    atomic_store_explicit(&have_avx512bw, f && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"), memory_order_relaxed);
}
__attribute__((constructor)) static void folio_detect_cpu(void) {
    __builtin_cpu_init();
    folio_kernels_use_avx512(1);
    const char *a = getenv("FOLIO_GATHER_AHEAD");
    if (a) { long v = strtol(a, NULL, 10); if (v >= 1 && v <= GATHER_AHEAD_MAX) gather_ahead = (size_t)v; }
    const char *g = getenv("FOLIO_GATHER_MODE");
    if (g) {
        if (!strcmp(g, "prefetch")) gather_mode = GATHER_PREFETCH;
        else if (!strcmp(g, "touch")) gather_mode = GATHER_TOUCH;
        else if (!strcmp(g, "adaptive")) gather_mode = GATHER_ADAPTIVE;
    }
    const char *h = getenv("FOLIO_PREFETCH");
    if (h) {
        if (!strcmp(h, "t0")) prefetch_hint = 3;
        else if (!strcmp(h, "t1")) prefetch_hint = 2;
        else if (!strcmp(h, "t2")) prefetch_hint = 1;
        else if (!strcmp(h, "nta")) prefetch_hint = 0;
        else if (!strcmp(h, "none")) prefetch_hint = -1;
    }
}
#else
void folio_kernels_use_avx512(int on) { (void)on; }
#endif

ROW_CLONES static void row_int4_groups_generic(const uint8_t *rec, size_t width, size_t group, float *o, int acc) {
    size_t groups = width / group;
    const uint8_t *packed = rec + 4 * groups;
    for (size_t g = 0; g < groups; g++) {
        float s = half_to_float(rec + 4 * g), m = half_to_float(rec + 4 * g + 2);
        const uint8_t *b = packed + g * group / 2; float *og = o + g * group;
        if (acc) {
            for (size_t k = 0; k < group / 2; k++) {
                og[2 * k] += (float)(b[k] & 15) * s + m;
                og[2 * k + 1] += (float)(b[k] >> 4) * s + m;
            }
        } else {
            for (size_t k = 0; k < group / 2; k++) {
                og[2 * k] = (float)(b[k] & 15) * s + m;
                og[2 * k + 1] = (float)(b[k] >> 4) * s + m;
            }
        }
    }
}

ROW_CLONES static void row_affine8_groups(const uint8_t *rec, size_t width, size_t group, float *o, int acc) {
    size_t groups = width / group;
    const uint8_t *c = rec + 4 * groups;
    for (size_t g = 0; g < groups; g++) {
        float s = half_to_float(rec + 4 * g), m = half_to_float(rec + 4 * g + 2);
        const uint8_t *cg = c + g * group; float *og = o + g * group;
        if (acc) { for (size_t j = 0; j < group; j++) og[j] += s * (float)cg[j] + m; }
        else     { for (size_t j = 0; j < group; j++) og[j] = s * (float)cg[j] + m; }
    }
}

/* One loop per kind and per store/add, so that each vectorizes: with the kind and `acc`
   tested per value, the bf16 tiles of a 1B model's prefill spent 30 % of it here. */
#define PLAIN_LOOP(VALUE) do { \
        if (acc) { for (size_t j = 0; j < width; j++) o[j] += VALUE; } \
        else { for (size_t j = 0; j < width; j++) o[j] = VALUE; } \
    } while (0)
static inline float f32_at(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }
static inline float bf16_at(const uint8_t *p) { uint16_t b; memcpy(&b, p, 2); return from_bits((uint32_t)b << 16); }

ROW_CLONES static void row_plain(int kind, const uint8_t *rec, size_t width, float *o, int acc) {
    if (kind == FOLIO_ROW_F32) PLAIN_LOOP(f32_at(rec + 4 * j));
    else if (kind == FOLIO_ROW_F16) PLAIN_LOOP(half_to_float(rec + 2 * j));
    else PLAIN_LOOP(bf16_at(rec + 2 * j));
}
#undef PLAIN_LOOP

static inline void row_int4_groups(const uint8_t *rec, size_t width, size_t group, float *o, int acc) {
#if defined(__x86_64__) && !defined(FOLIO_NO_CLONES)
    if (atomic_load_explicit(&have_avx512, memory_order_relaxed) && group % 32 == 0) { row_int4_groups_avx512(rec, width, group, o, acc); return; }
#endif
    row_int4_groups_generic(rec, width, group, o, acc);
}

static inline void decode_one(int kind, size_t group, const uint8_t *rec, size_t width, float *o, int acc) {
    switch (kind) {
    case FOLIO_ROW_INT8: row_int8(rec, width, o, acc); break;
    case FOLIO_ROW_INT8_GROUPS:
#if defined(__x86_64__) && !defined(FOLIO_NO_CLONES)
        if (atomic_load_explicit(&have_avx512, memory_order_relaxed) && group % 16 == 0) { row_int8_groups_avx512(rec, width, group, o, acc); break; }
#endif
        row_int8_groups(rec, width, group, o, acc); break;
    case FOLIO_ROW_INT4_GROUPS: row_int4_groups(rec, width, group, o, acc); break;
    case FOLIO_ROW_AFFINE8_GROUPS: row_affine8_groups(rec, width, group, o, acc); break;
    default: row_plain(kind, rec, width, o, acc); break;
    }
}

static inline uint32_t touch_record(const uint8_t *p, size_t size) {
    const uint8_t *end = p + size;
    uint32_t sum = *p;
    for (const uint8_t *q = (const uint8_t *)(((uintptr_t)p + 64) & ~(uintptr_t)63); q < end; q += 64) sum += *q;
    return sum;
}

/* Keeps the touching loads from being optimized away (workers store to it concurrently,
   hence an atomic). */
_Atomic uint32_t folio_touch_sink;

/* The n records at recs summed into out (acc: added to what out holds). */
static inline void decode_sum(int kind, size_t group, const uint8_t *const *recs, size_t n, size_t width, float *out, int acc) {
#if defined(__x86_64__) && !defined(FOLIO_NO_CLONES)
    if (atomic_load_explicit(&have_avx512bw, memory_order_relaxed)) {
        if (kind == FOLIO_ROW_INT4_GROUPS && group % 32 == 0) { sum_int4_avx512(recs, n, width, group, out, acc); return; }
        if (kind == FOLIO_ROW_INT8) { sum_int8_avx512(recs, n, width, out, acc); return; }
    }
#endif
    for (size_t t = 0; t < n; t++) decode_one(kind, group, recs[t], width, out, acc || t > 0);
}

/* How the records of a chunk are brought in before it is decoded. Prefetching the next
   chunk overlaps its misses with the decoding of this one, and on an otherwise idle core that
   is the faster: int8 12 x 262,144 x 256 tables, 1 thread, AMD EPYC Zen 4, 28-31 M rows/s
   against 15 M for loading first. But on the same machine, for seconds at a time, software
   prefetches that go to DRAM stop paying (int8 8-12 M rows/s, below a plain loop of loads at
   19-20 M), while loads keep their speed; loading each chunk's lines in a tight loop and then
   decoding it from L1 keeps 14.5-15.4 M then. Neither holds everywhere, so by default each
   thread measures both and uses the faster (GATHER_ADAPTIVE); FOLIO_GATHER_MODE=prefetch,
   touch or adaptive fixes it for measurements. */
#define SEGMENT_CHUNKS 8
#define EXPLORE_EVERY 32
typedef struct { double cost[2]; unsigned segments; int use_touch; } gather_adapt;
static _Thread_local gather_adapt adapt;

static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Records the seconds per record of a segment run with `touch`, then picks the mode of the
   next segment: the cheaper one by a moving average (the other mode must be 5 % cheaper to
   take over), the other one every EXPLORE_EVERY segments and while it has never been
   measured. The counts of segments per mode are kept for `bench lookups`. */
static _Atomic unsigned long gather_segments[2];
void folio_gather_segments(uint64_t counts[2]) {
    counts[0] = atomic_load_explicit(&gather_segments[0], memory_order_relaxed);
    counts[1] = atomic_load_explicit(&gather_segments[1], memory_order_relaxed);
}
static void adapt_segment(int touch, double per_record) {
    atomic_fetch_add_explicit(&gather_segments[touch ? 1 : 0], 1, memory_order_relaxed);
    double *c = &adapt.cost[touch ? 1 : 0];
    *c = *c == 0 ? per_record : 0.75 * *c + 0.25 * per_record;
    adapt.segments++;
    int best = touch ? !(adapt.cost[0] < 0.95 * adapt.cost[1]) : adapt.cost[1] < 0.95 * adapt.cost[0];
    if (adapt.cost[0] == 0) adapt.use_touch = 0;
    else if (adapt.cost[1] == 0) adapt.use_touch = 1;
    else adapt.use_touch = adapt.segments % EXPLORE_EVERY == 0 ? !best : best;
}

/* Tokens [lo, hi) of a gather whose record (token i, table k) is at base + offset(i, k):
   chunks of whole tokens, each brought in by prefetch during the previous chunk's decoding
   or by loads just before its own (chosen as described before adapt_segment).
   `sum`: a token's tables summed into one output row; otherwise one output row per record
   (tables = 1). */
typedef struct {
    const uint8_t *base; const int64_t *offsets;  /* offsets: [n, tables], or NULL with paged */
    const int64_t *table_starts, *rows; uint64_t rows_per_page, block, row_stride;
    size_t tables;
    double inverse_rpp;  /* 1 / rows_per_page: a multiply and a correction instead of a division */
} record_source;

static inline int64_t record_offset(const record_source *src, size_t at, size_t k) {  /* at = token * tables + k */
    if (src->offsets) return src->offsets[at];
    uint64_t r = (uint64_t)src->rows[at], rpp = src->rows_per_page;
    /* r < 2^53 (a row index), so the estimate is off by at most one either way. */
    uint64_t page = (uint64_t)((double)r * src->inverse_rpp);
    if (page * rpp > r) page--;
    else if ((page + 1) * rpp <= r) page++;
    uint64_t slot = r - page * rpp;
    return src->table_starts[k] + (int64_t)(page * src->block + slot * src->row_stride);
}

static void gather_tokens(int kind, size_t group, const record_source *src, size_t lo, size_t hi, size_t width,
                          size_t record_size, float *out, size_t out_stride, int accumulate, int sum) {
    size_t tables = src->tables;
    size_t ahead = gather_ahead;
    size_t per = tables > ahead ? 1 : ahead / tables;  /* tokens per chunk */
    const uint8_t *ring[2][GATHER_AHEAD_MAX];
    const size_t cap = sizeof ring[0] / sizeof ring[0][0];
    if (tables > cap) {  /* very many tables: no lookahead, one token at a time */
        const uint8_t *recs[1];
        for (size_t i = lo; i < hi; i++)
            for (size_t k = 0; k < tables; k++) {
                recs[0] = src->base + record_offset(src, i * tables + k, k);
                decode_sum(kind, group, recs, 1, width, out + (sum ? i : i * tables + k) * out_stride, accumulate || (sum && k > 0));
            }
        return;
    }
    /* `touch`: this chunk's lines are loaded (one byte a line) before it is decoded, and the
       next chunk is not prefetched; otherwise the next chunk is prefetched. */
    size_t cur = 0, n0 = 0;
    int touch = gather_mode == GATHER_TOUCH || (gather_mode == GATHER_ADAPTIVE && adapt.use_touch);
    for (size_t i = lo; i < hi && i < lo + per; i++)
        for (size_t k = 0; k < tables; k++) {
            const uint8_t *p = src->base + record_offset(src, i * tables + k, k);
            if (!touch) prefetch_record(p, record_size);
            ring[0][n0++] = p;
        }
    uint32_t touched = 0;
    size_t chunk_in_segment = 0;
    double segment_start = gather_mode == GATHER_ADAPTIVE ? now_seconds() : 0;
    size_t segment_records = 0;
    for (size_t c = lo; c < hi; c += per) {
        size_t e = c + per < hi ? c + per : hi, e2 = e + per < hi ? e + per : hi, nn = 0;
        if (touch)
            for (size_t t = 0; t < (e - c) * tables; t++) touched += touch_record(ring[cur][t], record_size);
        /* The mode for the next chunk is settled here, before its records are asked for. */
        int next_touch = touch;
        segment_records += (e - c) * tables;
        if (gather_mode == GATHER_ADAPTIVE && ++chunk_in_segment == SEGMENT_CHUNKS) {
            double t = now_seconds();
            adapt_segment(touch, (t - segment_start) / (double)segment_records);
            next_touch = adapt.use_touch;
            segment_start = t; segment_records = 0; chunk_in_segment = 0;
        }
        for (size_t i = e; i < e2; i++)
            for (size_t k = 0; k < tables; k++) {
                const uint8_t *p = src->base + record_offset(src, i * tables + k, k);
                if (!next_touch) prefetch_record(p, record_size);
                ring[cur ^ 1][nn++] = p;
            }
        for (size_t i = c; i < e; i++) {
            const uint8_t *const *recs = ring[cur] + (i - c) * tables;
            if (sum) decode_sum(kind, group, recs, tables, width, out + i * out_stride, accumulate);
            else
                for (size_t k = 0; k < tables; k++)
                    decode_sum(kind, group, recs + k, 1, width, out + (i * tables + k) * out_stride, accumulate);
        }
        touch = next_touch;
        cur ^= 1;
    }
    if (touched) atomic_store_explicit(&folio_touch_sink, touched, memory_order_relaxed);
}

void folio_gather_rows(int kind, size_t group, const uint8_t *base, const int64_t *offsets, size_t n,
                       size_t width, size_t record_size, float *out, size_t out_stride, int accumulate) {
    record_source src = {base, offsets, NULL, NULL, 0, 0, 0, 1, 0};
    gather_tokens(kind, group, &src, 0, n, width, record_size, out, out_stride, accumulate, 0);
}

void folio_gather_sum(int kind, size_t group, const uint8_t *base, const int64_t *offsets, size_t n, size_t tables,
                      size_t width, size_t record_size, float *out, size_t out_stride) {
    record_source src = {base, offsets, NULL, NULL, 0, 0, 0, tables, 0};
    gather_tokens(kind, group, &src, 0, n, width, record_size, out, out_stride, 0, 1);
}

uint64_t folio_touch_rows(const uint8_t *base, const int64_t *offsets, size_t n, size_t record_size) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += touch_record(base + offsets[i], record_size);
    return sum;
}

/* ---- A small spinning thread pool for lookups ----
   A batch of lookups takes a few hundred microseconds; waking sleeping threads for each
   one costs tens of microseconds and leaves a second core idle half the time. Workers spin
   on a generation counter for a while after each job, then sleep on a condition variable. */

#include <pthread.h>
#include <stdatomic.h>

#define POOL_MAX 64
#if defined(__x86_64__) || defined(__i386__)
#  define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#  define CPU_RELAX() __asm__ __volatile__("yield")
#else
#  define CPU_RELAX() ((void)0)
#endif
#define POOL_SPINS 200000

typedef struct {
    void (*fn)(void *ctx, size_t part, size_t parts);
    void *ctx;
    size_t parts;
} pool_job;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t pool_submit = PTHREAD_MUTEX_INITIALIZER;
/* The job's generation (high bits) and the next part to claim (low 16 bits). */
static _Atomic uint64_t pool_state;
static _Atomic size_t pool_done;
static pool_job pool_current;
static size_t pool_workers;

#define POOL_PART_BITS 16
#define POOL_PART_MASK (((uint64_t)1 << POOL_PART_BITS) - 1)

/* Claims and runs parts of job `g` until none is left (or another job has begun). Parts go
   to whichever thread claims them first, so a worker that wakes late (a vCPU of a virtual
   machine can take tens of milliseconds) delays nothing: the caller runs its parts. A claim
   that succeeds means job g is still current: the next job is published only once all
   parts of this one are done, so `job` (read after seeing g) is job g's. */
static void pool_claim(uint64_t g, pool_job job) {
    uint64_t s = atomic_load_explicit(&pool_state, memory_order_acquire);
    for (;;) {
        if ((s >> POOL_PART_BITS) != g || (s & POOL_PART_MASK) >= job.parts) return;
        if (!atomic_compare_exchange_weak_explicit(&pool_state, &s, s + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        job.fn(job.ctx, (size_t)(s & POOL_PART_MASK), job.parts);
        atomic_fetch_add_explicit(&pool_done, 1, memory_order_release);
        s = atomic_load_explicit(&pool_state, memory_order_acquire);
    }
}

static void *pool_worker(void *arg) {
    (void)arg;
    uint64_t seen = atomic_load_explicit(&pool_state, memory_order_acquire) >> POOL_PART_BITS;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool_state, memory_order_acquire) >> POOL_PART_BITS) == seen && spins < POOL_SPINS) {
            spins++;
            CPU_RELAX();
        }
        if (g == seen) {
            pthread_mutex_lock(&pool_mu);
            while ((g = atomic_load_explicit(&pool_state, memory_order_acquire) >> POOL_PART_BITS) == seen) pthread_cond_wait(&pool_cv, &pool_mu);
            pthread_mutex_unlock(&pool_mu);
        }
        seen = g;
        pool_claim(g, pool_current);
    }
    return NULL;
}

static void pool_start_workers(size_t parts) {
    while (pool_workers + 1 < parts) {
        pthread_t t;
        if (pthread_create(&t, NULL, pool_worker, NULL) != 0) break;
        pthread_detach(t);
        pool_workers++;
    }
}

/* Runs fn(ctx, p, parts) for p < parts on the calling thread and the workers, each part
   once, by whichever claims it first. One job at a time: while the pool is busy (another
   caller, or a call from inside a job) the parts run one after another on the calling
   thread instead of waiting. */
static void pool_run(void (*fn)(void *, size_t, size_t), void *ctx, size_t parts) {
    if (parts <= 1) { fn(ctx, 0, 1); return; }
    if (parts > POOL_MAX) parts = POOL_MAX;
    if (pthread_mutex_trylock(&pool_submit) != 0) {
        for (size_t p = 0; p < parts; p++) fn(ctx, p, parts);
        return;
    }
    pool_start_workers(parts);
    if (parts - 1 > pool_workers) parts = pool_workers + 1;
    pool_current = (pool_job){fn, ctx, parts};
    atomic_store_explicit(&pool_done, 0, memory_order_relaxed);
    uint64_t g = (atomic_load_explicit(&pool_state, memory_order_relaxed) >> POOL_PART_BITS) + 1;
    pthread_mutex_lock(&pool_mu);
    atomic_store_explicit(&pool_state, g << POOL_PART_BITS, memory_order_release);
    pthread_cond_broadcast(&pool_cv);
    pthread_mutex_unlock(&pool_mu);
    pool_claim(g, pool_current);
    while (atomic_load_explicit(&pool_done, memory_order_acquire) != parts) CPU_RELAX();
    pthread_mutex_unlock(&pool_submit);
}

void folio_parallel_start(size_t parts) {
    if (parts > POOL_MAX) parts = POOL_MAX;
    pthread_mutex_lock(&pool_submit);
    pool_start_workers(parts);
    pthread_mutex_unlock(&pool_submit);
}

void folio_parallel(size_t parts, void (*fn)(void *ctx, size_t part, size_t parts), void *ctx) {
    pool_run(fn, ctx, parts ? parts : 1);
}

typedef struct {
    int kind; size_t group; const uint8_t *base; const int64_t *offsets; size_t n, tables, width, record_size;
    float *out; size_t out_stride;
} gather_job;

static void gather_part(void *ctx, size_t p, size_t parts) {
    gather_job *j = ctx;
    size_t lo = j->n * p / parts, hi = j->n * (p + 1) / parts;
    if (hi > lo)
        folio_gather_sum(j->kind, j->group, j->base, j->offsets + lo * j->tables, hi - lo, j->tables, j->width, j->record_size,
                         j->out + lo * j->out_stride, j->out_stride);
}

void folio_gather_sum_parallel(size_t threads, int kind, size_t group, const uint8_t *base, const int64_t *offsets, size_t n,
                               size_t tables, size_t width, size_t record_size, float *out, size_t out_stride) {
    gather_job j = {kind, group, base, offsets, n, tables, width, record_size, out, out_stride};
    size_t parts = threads < n ? threads : n;
    pool_run(gather_part, &j, parts ? parts : 1);
}

/* Paged tables of one layout: row ids in, offsets computed chunk by chunk on the worker
   that decodes them (so that the whole lookup, not just the decoding, is split). */
typedef struct {
    int kind; size_t group; const uint8_t *base; const int64_t *table_starts; const int64_t *rows; size_t n, tables;
    uint64_t rows_per_page, block, row_stride; size_t width, record_size; float *out; size_t out_stride; int sum;
} paged_job;

static void paged_part(void *ctx, size_t p, size_t parts) {
    paged_job *j = ctx;
    size_t lo = j->n * p / parts, hi = j->n * (p + 1) / parts;
    record_source src = {j->base, NULL, j->table_starts, j->rows, j->rows_per_page, j->block, j->row_stride, j->tables,
                         1.0 / (double)j->rows_per_page};
    gather_tokens(j->kind, j->group, &src, lo, hi, j->width, j->record_size, j->out, j->out_stride, 0, j->sum);
}

void folio_gather_paged(size_t threads, int sum, int kind, size_t group, const uint8_t *base, const int64_t *table_starts,
                        const int64_t *rows, size_t n, size_t tables, uint64_t rows_per_page, uint64_t block,
                        uint64_t row_stride, size_t width, size_t record_size, float *out, size_t out_stride) {
    paged_job j = {kind, group, base, table_starts, rows, n, tables, rows_per_page, block, row_stride, width, record_size, out, out_stride,
                   sum};
    size_t parts = threads < n ? threads : n;
    pool_run(paged_part, &j, parts ? parts : 1);
}
