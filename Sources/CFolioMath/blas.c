#define _GNU_SOURCE
#include "folio_blas.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

/* cblas.h's values: CblasRowMajor, CblasNoTrans, CblasTrans. */
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static sgemm_fn sgemm;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int status = -1;

static void load(void) {
    if (!getenv("OPENBLAS_CORETYPE")) {
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512dq"))
            setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            setenv("OPENBLAS_CORETYPE", "Haswell", 0);
#endif
    }
    /* Folio calls sgemm from its own workers, one call per core: OpenBLAS's own threads are
       never used, but the pthreads build starts them when loaded unless told otherwise, and
       they spin in sched_yield after start (4 % of a 2-thread prompt pass on AMD Zen 4,
       taken from the workers' cores). */
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    void (*threads)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    if (!sgemm) return;
    if (threads) threads(1);
    status = 0;
}

int folio_blas_load(void) {
    pthread_once(&once, load);
    return status;
}

void folio_sgemm(int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                 float beta, float *c, int ldc) {
    sgemm(ROW_MAJOR, NO_TRANS, trans_b ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
