/*
 * Streaming read bandwidth of this machine, for `Tools/bench/weights_bench.py`: what a
 * decoding step that reads every weight once from memory can reach at best.
 *
 * Each thread sums its own contiguous share of a buffer of --mib MiB (default 1024, far
 * larger than any cache) with 64-byte vector loads; the best of --passes passes is printed as
 * one JSON line per thread count: {"threads": T, "gb_per_s": X}.
 *
 * Build: gcc -O3 -march=native -pthread -o bandwidth bandwidth.c
 * Usage: bandwidth [--mib M] [--threads 1,2] [--passes P]
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const uint8_t *p; size_t n; uint64_t sum; } part;

static void *reader(void *arg) {
    part *w = arg;
#if defined(__AVX512F__)
    __m512i acc = _mm512_setzero_si512();
    for (size_t i = 0; i + 256 <= w->n; i += 256) {
        __m512i a = _mm512_load_si512((const void *)(w->p + i)), b = _mm512_load_si512((const void *)(w->p + i + 64));
        __m512i c = _mm512_load_si512((const void *)(w->p + i + 128)), d = _mm512_load_si512((const void *)(w->p + i + 192));
        acc = _mm512_add_epi64(acc, _mm512_add_epi64(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d)));
    }
    w->sum = (uint64_t)_mm512_reduce_add_epi64(acc);
#else
    uint64_t s = 0;
    const uint64_t *q = (const uint64_t *)w->p;
    for (size_t i = 0; i < w->n / 8; i++) s += q[i];
    w->sum = s;
#endif
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t mib = 1024;
    int passes = 5;
    char threads[64] = "1,2";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mib")) mib = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--passes")) passes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) snprintf(threads, sizeof threads, "%s", argv[i + 1]);
    }
    size_t n = mib << 20;
    uint8_t *buf = aligned_alloc(4096, n);
    if (!buf) { fprintf(stderr, "bandwidth: cannot allocate %zu MiB\n", mib); return 1; }
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 131);
    for (char *tok = strtok(threads, ","); tok; tok = strtok(NULL, ",")) {
        int t = atoi(tok);
        if (t < 1 || t > 64) continue;
        double best = 0;
        uint64_t check = 0;
        for (int pass = 0; pass < passes; pass++) {
            part parts[64];
            pthread_t ids[64];
            size_t share = (n / t) & ~(size_t)255;
            double t0 = now();
            for (int k = 0; k < t; k++) {
                parts[k] = (part){buf + k * share, share, 0};
                pthread_create(&ids[k], NULL, reader, &parts[k]);
            }
            for (int k = 0; k < t; k++) { pthread_join(ids[k], NULL); check += parts[k].sum; }
            double gbs = (double)share * t / (now() - t0) / 1e9;
            if (gbs > best) best = gbs;
        }
        printf("{\"threads\": %d, \"gb_per_s\": %.2f, \"check\": %llu}\n", t, best, (unsigned long long)(check & 0xff));
    }
    free(buf);
    return 0;
}
