/*
 * Random-access ceiling probe for `Tools/bench/lookups_bench.py`.
 *
 * For every token and every table it touches one byte in each 64-byte cache line of that
 * table's row record, and does nothing else with the data (it only sums the touched bytes so
 * the loads cannot be optimised away). That is the memory traffic of a lookup without any
 * decoding: an upper bound for what a gather of the same rows can reach.
 *
 * Three placements of the same bytes (--modes, comma separated):
 *   mmap   the .folio file mapped read-only (MAP_SHARED), as Folio maps it: 4 KiB pages of
 *          the page cache. The first pass also pays the minor faults that fill the page table.
 *   anon   a private anonymous copy of each table with MADV_NOHUGEPAGE (4 KiB pages).
 *   huge   a private anonymous copy of each table, 2 MiB aligned, MADV_HUGEPAGE before the
 *          copy (2 MiB pages when transparent huge pages allow it; AnonHugePages is printed).
 *
 * Usage:
 *   probe --file F --ids IDS.bin --tokens N --tables T --threads 1,2 --modes mmap,anon,huge
 *         [--passes P] --table OFF:STRIDE:ROWS_PER_PAGE:BLOCK:RECORD:NBYTES:ROWS  (T times)
 *
 * IDS.bin holds N*T little-endian int64 row ids, token-major ([N, T], as ids.npy). OFF is the
 * absolute byte offset of a table, row r's record starts at
 *     OFF + (r / ROWS_PER_PAGE) * BLOCK + (r % ROWS_PER_PAGE) * STRIDE
 * and is RECORD bytes long (Formats/FOLIO.md 7.2). Threads split the tokens in contiguous
 * ranges. One JSON line per (mode, threads) on stdout.
 *
 * Build: gcc -O2 -pthread -o probe probe.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_TABLES 256
#define MAX_THREADS 64
#define HUGE_2M (2u << 20)

typedef struct {
    int64_t off, stride, rpp, block, record, nbytes, rows;
} table_t;

static table_t tables[MAX_TABLES];
static const uint8_t *bases[MAX_TABLES]; /* address of each table's first byte */
static int ntables;
static int64_t ntokens;
static const int64_t *ids;

typedef struct {
    int64_t lo, hi;
    uint64_t sum;
} job_t;

static void die(const char *msg) {
    fprintf(stderr, "probe: %s (%s)\n", msg, strerror(errno));
    exit(2);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *worker(void *arg) {
    job_t *j = (job_t *)arg;
    uint64_t sum = 0;
    for (int64_t i = j->lo; i < j->hi; i++) {
        const int64_t *row = ids + i * ntables;
        for (int t = 0; t < ntables; t++) {
            const table_t *tb = &tables[t];
            int64_t r = row[t];
            const uint8_t *rec = bases[t] + (r / tb->rpp) * tb->block + (r % tb->rpp) * tb->stride;
            const uint8_t *end = rec + tb->record;
            /* one byte in each cache line the record touches */
            const uint8_t *p = (const uint8_t *)((uintptr_t)rec & ~(uintptr_t)63);
            if (p < rec) { sum += *rec; p += 64; }
            for (; p < end; p += 64) sum += *p;
        }
    }
    j->sum = sum;
    return NULL;
}

static double run_pass(int nthreads, uint64_t *checksum) {
    pthread_t th[MAX_THREADS];
    job_t jobs[MAX_THREADS];
    double t0 = now();
    for (int k = 0; k < nthreads; k++) {
        jobs[k].lo = ntokens * k / nthreads;
        jobs[k].hi = ntokens * (k + 1) / nthreads;
        jobs[k].sum = 0;
        if (k > 0 && pthread_create(&th[k], NULL, worker, &jobs[k]) != 0) die("pthread_create");
    }
    worker(&jobs[0]);
    for (int k = 1; k < nthreads; k++) pthread_join(th[k], NULL);
    double dt = now() - t0;
    uint64_t s = 0;
    for (int k = 0; k < nthreads; k++) s += jobs[k].sum;
    *checksum = s;
    return dt;
}

static long anon_huge_kb(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

int main(int argc, char **argv) {
    const char *file = NULL, *idsfile = NULL, *threads_s = "1", *modes_s = "mmap";
    int passes = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "probe: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--file")) file = v;
        else if (!strcmp(a, "--ids")) idsfile = v;
        else if (!strcmp(a, "--tokens")) ntokens = atoll(v);
        else if (!strcmp(a, "--tables")) ; /* implied by the number of --table */
        else if (!strcmp(a, "--threads")) threads_s = v;
        else if (!strcmp(a, "--modes")) modes_s = v;
        else if (!strcmp(a, "--passes")) passes = atoi(v);
        else if (!strcmp(a, "--table")) {
            if (ntables == MAX_TABLES) { fprintf(stderr, "probe: too many tables\n"); return 2; }
            table_t *t = &tables[ntables++];
            if (sscanf(v, "%ld:%ld:%ld:%ld:%ld:%ld:%ld", &t->off, &t->stride, &t->rpp, &t->block,
                       &t->record, &t->nbytes, &t->rows) != 7) {
                fprintf(stderr, "probe: bad --table %s\n", v);
                return 2;
            }
        } else { fprintf(stderr, "probe: unknown argument %s\n", a); return 2; }
        i++;
    }
    if (!file || !idsfile || ntokens <= 0 || ntables == 0 || passes < 1) {
        fprintf(stderr, "usage: probe --file F --ids IDS.bin --tokens N --threads 1,2 --modes mmap,anon,huge "
                        "[--passes P] --table OFF:STRIDE:RPP:BLOCK:RECORD:NBYTES:ROWS ...\n");
        return 2;
    }

    /* ids */
    int fd = open(idsfile, O_RDONLY);
    if (fd < 0) die("open ids");
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat ids");
    if ((int64_t)st.st_size != ntokens * ntables * 8) {
        fprintf(stderr, "probe: %s has %ld bytes, expected %ld\n", idsfile, (long)st.st_size,
                (long)(ntokens * ntables * 8));
        return 2;
    }
    int64_t *idbuf = malloc((size_t)st.st_size);
    if (!idbuf) die("malloc ids");
    for (size_t got = 0; got < (size_t)st.st_size;) {
        ssize_t n = read(fd, (char *)idbuf + got, (size_t)st.st_size - got);
        if (n <= 0) die("read ids");
        got += (size_t)n;
    }
    close(fd);
    for (int64_t i = 0; i < ntokens * ntables; i++) {
        int t = (int)(i % ntables);
        if (idbuf[i] < 0 || idbuf[i] >= tables[t].rows) {
            fprintf(stderr, "probe: id %ld out of range for table %d\n", (long)idbuf[i], t);
            return 2;
        }
    }
    ids = idbuf;

    /* the file */
    fd = open(file, O_RDONLY);
    if (fd < 0) die("open file");
    if (fstat(fd, &st) != 0) die("fstat file");
    for (int t = 0; t < ntables; t++)
        if (tables[t].off < 0 || tables[t].off + tables[t].nbytes > (int64_t)st.st_size) {
            fprintf(stderr, "probe: table %d lies outside the file\n", t);
            return 2;
        }
    uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) die("mmap");
    close(fd);

    int threads[MAX_THREADS], nthr = 0;
    for (char *s = strdup(threads_s), *tok = strtok(s, ","); tok && nthr < MAX_THREADS; tok = strtok(NULL, ","))
        threads[nthr++] = atoi(tok) < 1 ? 1 : (atoi(tok) > MAX_THREADS ? MAX_THREADS : atoi(tok));

    for (char *s = strdup(modes_s), *mode = strtok(s, ","); mode; mode = strtok(NULL, ",")) {
        uint8_t *copies[MAX_TABLES] = {0};
        size_t sizes[MAX_TABLES] = {0};
        int is_map = !strcmp(mode, "mmap");
        if (!is_map && strcmp(mode, "anon") && strcmp(mode, "huge")) {
            fprintf(stderr, "probe: unknown mode %s\n", mode);
            return 2;
        }
        double setup = now();
        for (int t = 0; t < ntables; t++) {
            if (is_map) { bases[t] = map + tables[t].off; continue; }
            size_t n = ((size_t)tables[t].nbytes + HUGE_2M - 1) / HUGE_2M * HUGE_2M;
            if (n == 0) n = HUGE_2M;
            void *p = mmap(NULL, n + HUGE_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) die("mmap anon");
            uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
            if (madvise(a, n, strcmp(mode, "huge") ? MADV_NOHUGEPAGE : MADV_HUGEPAGE) != 0) die("madvise");
            memcpy(a, map + tables[t].off, (size_t)tables[t].nbytes);
            copies[t] = p;
            sizes[t] = n + HUGE_2M;
            bases[t] = a;
        }
        setup = now() - setup;
        long hugekb = anon_huge_kb();
        for (int k = 0; k < nthr; k++) {
            double first = 0, best = 1e300, secs[64];
            uint64_t sum = 0;
            int np = passes > 64 ? 64 : passes;
            for (int p = 0; p < np; p++) {
                secs[p] = run_pass(threads[k], &sum);
                if (p == 0) first = secs[p];
                if (secs[p] < best) best = secs[p];
            }
            double rows = (double)ntokens * ntables;
            printf("{\"mode\":\"%s\",\"threads\":%d,\"tokens\":%ld,\"tables\":%d,\"passes\":[", mode, threads[k],
                   (long)ntokens, ntables);
            for (int p = 0; p < np; p++) printf("%s%.6f", p ? "," : "", secs[p]);
            printf("],\"rows_per_second_first\":%.1f,\"rows_per_second\":%.1f,\"setup_seconds\":%.3f,"
                   "\"anon_huge_kb\":%ld,\"checksum\":%lu}\n",
                   rows / first, rows / best, setup, hugekb, (unsigned long)sum);
            fflush(stdout);
            /* mmap: later thread counts would start with a filled page table; drop it so every
               thread count's first pass pays the same faults. */
            if (is_map && k + 1 < nthr) {
                munmap(map, (size_t)st.st_size);
                fd = open(file, O_RDONLY);
                if (fd < 0) die("reopen file");
                map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
                if (map == MAP_FAILED) die("mmap");
                close(fd);
                for (int t = 0; t < ntables; t++) bases[t] = map + tables[t].off;
            }
        }
        for (int t = 0; t < ntables; t++)
            if (copies[t]) munmap(copies[t], sizes[t]);
    }
    munmap(map, (size_t)st.st_size);
    free(idbuf);
    return 0;
}
