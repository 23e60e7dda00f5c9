/* Matrix-vector kernel throughput: folio_matvec over `count` matrices of N x K records of one kind
   (4 int8/g32, 5 int4/g32), best of `reps` passes; a count whose bytes exceed the L3 measures the
   stream from memory. Build from the repository root:
   clang -O3 -march=native -ISources/CFolioMath/include -ISources/CFolioMath -ISources/CFolioKernels/include \
     -o /tmp/matvec_bench Tools/bench/matvec_bench.c Sources/CFolioMath/matvec.c Sources/CFolioKernels/kernels.c \
     Sources/CFolioMath/math.c Sources/CFolioMath/blas.c -lm -lpthread -ldl
   Run: /tmp/matvec_bench KIND N K COUNT REPS, e.g. 5 256 768 1 2000 (cache) or 5 2048 768 128 10 (memory). */
#include "folio_matvec.h"
#include "folio_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  int kind=atoi(argv[1]); size_t N=atoi(argv[2]),K=atoi(argv[3]), nm=atoi(argv[4]); int reps=atoi(argv[5]);
  size_t G=K/32, rs = kind==FOLIO_ROW_INT4_GROUPS? 4*G+K/2 : 2*G+K;
  size_t st=(rs+63)&~63;
  uint8_t*W=aligned_alloc(64,nm*N*st); for(size_t i=0;i<nm*N*st;i++)W[i]=rand()&0x3f;
  float*x=malloc(4*K); for(size_t i=0;i<K;i++)x[i]=(rand()/(float)RAND_MAX-0.5f);
  float*y=malloc(4*N);
  void*act=aligned_alloc(64,(folio_act_size(K)+63)&~63); folio_act_prepare(x,K,act);
  double best=1e9;
  for(int r=0;r<reps;r++){ double t0=now();
    for(size_t j=0;j<nm;j++){ folio_matrix m={kind,32,W+j*N*st,N,K,1,st,st}; folio_matvec(&m,0,N,x,act,y,0);} 
    double t=now()-t0; if(t<best)best=t; }
  double macs=(double)nm*N*K, bytes=(double)nm*N*st;
  printf("kind %d N %zu K %zu x%zu: %.3f ms  %.1f GMAC/s  %.1f GB/s\n",kind,N,K,nm,best*1e3,macs/best*1e-9,bytes/best*1e-9);
}
