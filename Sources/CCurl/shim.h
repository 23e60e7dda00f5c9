#ifndef FOLIO_CCURL_SHIM_H
#define FOLIO_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: one typed
   wrapper per argument kind. */
typedef size_t (*folio_curl_data_fn)(char *data, size_t size, size_t count, void *user);

static inline CURLcode folio_curl_set_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode folio_curl_set_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode folio_curl_set_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode folio_curl_set_body_handler(CURL *h, folio_curl_data_fn f, void *user) {
    CURLcode c = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, f);
    return c != CURLE_OK ? c : curl_easy_setopt(h, CURLOPT_WRITEDATA, user);
}
static inline CURLcode folio_curl_set_header_handler(CURL *h, folio_curl_data_fn f, void *user) {
    CURLcode c = curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, f);
    return c != CURLE_OK ? c : curl_easy_setopt(h, CURLOPT_HEADERDATA, user);
}
static inline CURLcode folio_curl_get_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode folio_curl_get_pointer(CURL *h, CURLINFO i, void **v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode folio_curl_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT); }
static inline CURLMcode folio_curlm_set_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }
#endif
