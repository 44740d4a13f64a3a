/* curl: libcurl's functions, resolved from libcurl.so.4 on first use (see
 * souk/curl.h and src/dl.h). */
#include "souk/curl.h"

#include "dl.h"

static souk_curl_t s_curl;

#define SOUK_CURL_NAME(name) "curl_" #name,
static const char *const s_names[] = { SOUK_CURL_FUNCTIONS(SOUK_CURL_NAME) };
#undef SOUK_CURL_NAME

static souk_dl_t s_lib = {
    .soname = "libcurl.so.4", .package = "libcurl4", .names = s_names,
    .count = sizeof s_names / sizeof s_names[0], .table = &s_curl,
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

_Static_assert(sizeof(souk_curl_t) == sizeof s_names / sizeof s_names[0] * sizeof(void *),
               "souk_curl_t is one function pointer per name");

int souk_curl_load(char *err, size_t len) { return souk_dl_load(&s_lib, err, len); }

const souk_curl_t *souk_curl(void) { return souk_dl_table(&s_lib); }
