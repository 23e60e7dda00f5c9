/* Throughput of Folio's matrix-vector kernels (Sources/CFolioMath/matvec.c) per encoding, one
   thread, against a streaming read of the same bytes (what memory allows):

     clang -O2 -I Sources/CFolioMath/include -I Sources/CFolioKernels/include \
        Tools/bench/matvec_bench.c Sources/CFolioMath/matvec.c Sources/CFolioKernels/kernels.c \
        -lm -lpthread -o /tmp/matvec_bench && /tmp/matvec_bench [ROWS COLS]   (clang: the Swift toolchain's)

   For each of bf16, int8/g32 and int4/g32 (and f32), a matrix of random records ROWS x COLS
   (default 8192 x 2048: 32 MiB in bf16, larger than this machine's last-level cache share, so
   the rows come from memory) and one in cache (ROWS / 16), multiplied by a prepared input
   repeatedly; prints GB/s of records read and the fraction of the streaming read. */
#include "folio_matvec.h"
#include "folio_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static size_t record_size(int kind, size_t k) {
    switch (kind) {
    case FOLIO_ROW_F32: return 4 * k;
    case FOLIO_ROW_BF16: return 2 * k;
    case FOLIO_ROW_INT8_GROUPS: return 2 * (k / 32) + k;
    case FOLIO_ROW_INT4_GROUPS: return 4 * (k / 32) + k / 2;
    }
    return 0;
}

static double stream(const uint8_t *p, size_t n, int reps) {
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int r = 0; r < reps; r++) {
        double t = now();
        uint64_t s = 0;
        for (size_t i = 0; i < n; i += 64) s += *(const uint64_t *)(p + i);
        sink += s;
        t = now() - t;
        if (t < best) best = t;
    }
    return n / best / 1e9;
}

int main(int argc, char **argv) {
    size_t rows = argc > 2 ? strtoul(argv[1], 0, 10) : 8192, k = argc > 2 ? strtoul(argv[2], 0, 10) : 2048;
    float *x = malloc(k * 4), *y = malloc(rows * 4);
    srand(1);
    for (size_t j = 0; j < k; j++) x[j] = (float)rand() / RAND_MAX - 0.5f;
    void *act = aligned_alloc(64, folio_act_size(k));
    folio_act_prepare(x, k, act);
    const int kinds[] = {FOLIO_ROW_F32, FOLIO_ROW_BF16, FOLIO_ROW_INT8_GROUPS, FOLIO_ROW_INT4_GROUPS};
    const char *names[] = {"f32", "bf16", "int8/g32", "int4/g32"};
    printf("features %d; rows %zu x cols %zu\n", folio_matvec_features(), rows, k);
    for (int e = 0; e < 4; e++) {
        size_t rs = record_size(kinds[e], k), stride = (rs + 63) & ~(size_t)63;
        if (kinds[e] == FOLIO_ROW_F32 || kinds[e] == FOLIO_ROW_BF16) stride = rs;
        uint8_t *base = aligned_alloc(64, stride * rows);
        for (size_t i = 0; i < stride * rows; i++) base[i] = (uint8_t)rand();
        if (kinds[e] == FOLIO_ROW_F32) for (size_t i = 0; i < rows * k; i++) ((float *)base)[i] = (float)rand() / RAND_MAX - 0.5f;
        if (kinds[e] == FOLIO_ROW_BF16) for (size_t i = 0; i < rows * k; i++) ((uint16_t *)base)[i] = (uint16_t)(0x3C00 | (rand() & 0x7FF));
        if (kinds[e] == FOLIO_ROW_INT8_GROUPS || kinds[e] == FOLIO_ROW_INT4_GROUPS)
            for (size_t r = 0; r < rows; r++) for (size_t g = 0; g < k / 32; g++) {
                _Float16 s = (_Float16)0.01f, m = (_Float16)-0.05f;
                if (kinds[e] == FOLIO_ROW_INT8_GROUPS) memcpy(base + r * stride + 2 * g, &s, 2);
                else { memcpy(base + r * stride + 4 * g, &s, 2); memcpy(base + r * stride + 4 * g + 2, &m, 2); }
            }
        folio_matrix m = {kinds[e], (kinds[e] == FOLIO_ROW_INT8_GROUPS || kinds[e] == FOLIO_ROW_INT4_GROUPS) ? 32 : 0, base, rows, k, 1, stride, stride};
        for (int pass = 0; pass < 2; pass++) {
            size_t n = pass == 0 ? rows : rows / 16;
            int reps = pass == 0 ? 20 : 200;
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t = now();
                folio_matvec(&m, 0, n, x, act, y, 0);
                t = now() - t;
                if (t < best) best = t;
            }
            double gbs = n * stride / best / 1e9, s = stream(base, n * stride, reps);
            printf("%-9s %-9s %8.2f MB  %7.2f GB/s  stream %6.2f GB/s  fraction %.2f  (%.1f Gweights/s)\n", names[e],
                   pass == 0 ? "memory" : "cache", n * stride / 1e6, gbs, s, gbs / s, n * k / best / 1e9);
        }
        free(base);
    }
    return 0;
}
