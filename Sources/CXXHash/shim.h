#ifndef FOLIO_CXXHASH_SHIM_H
#define FOLIO_CXXHASH_SHIM_H
#include <xxhash.h>
#endif
