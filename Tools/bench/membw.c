/*
 * Read bandwidth of this machine: sums a 1 GiB float32 buffer with 1 and with 2 threads
 * (each thread one contiguous half), 5 passes each, and prints GB/s per pass. The ceiling
 * for `folio run`'s decoding, which streams every weight once per token.
 *
 * Build and run: gcc -O2 -march=native -pthread -o membw Tools/bench/membw.c && ./membw
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define COUNT ((size_t)256 << 20) /* floats: 1 GiB */

static float *data;

typedef struct { size_t lo, hi; double sum; } part_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *sum_part(void *arg) {
    part_t *p = arg;
    float acc[16] = {0};
    for (size_t i = p->lo; i < p->hi; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += data[i + j];
    double s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    p->sum = s;
    return NULL;
}

int main(void) {
    data = aligned_alloc(64, COUNT * sizeof(float));
    if (!data) { perror("aligned_alloc"); return 1; }
    for (size_t i = 0; i < COUNT; i++) data[i] = 1.0f;
    double check = 0;
    for (int threads = 1; threads <= 2; threads++) {
        for (int pass = 0; pass < 5; pass++) {
            part_t parts[2];
            pthread_t t;
            for (int k = 0; k < threads; k++) parts[k] = (part_t){COUNT * k / threads, COUNT * (k + 1) / threads, 0};
            double t0 = now();
            if (threads == 2 && pthread_create(&t, NULL, sum_part, &parts[1]) != 0) { perror("pthread_create"); return 1; }
            sum_part(&parts[0]);
            if (threads == 2) pthread_join(t, NULL);
            double dt = now() - t0;
            for (int k = 0; k < threads; k++) check += parts[k].sum;
            printf("%d thread(s), pass %d: %.1f GB/s\n", threads, pass + 1, (double)COUNT * sizeof(float) / dt / 1e9);
        }
    }
    printf("(checksum %.0f)\n", check);
    return 0;
}
