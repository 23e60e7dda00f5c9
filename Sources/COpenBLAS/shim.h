#ifndef FOLIO_COPENBLAS_SHIM_H
#define FOLIO_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
