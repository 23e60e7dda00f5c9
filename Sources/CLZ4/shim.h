#ifndef FOLIO_CLZ4_SHIM_H
#define FOLIO_CLZ4_SHIM_H
#include <lz4.h>
#include <lz4hc.h>
#endif
