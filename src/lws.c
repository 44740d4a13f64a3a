/* lws: libwebsockets' functions, resolved from libwebsockets.so.17 on first
 * use (see souk/lws.h and src/dl.h). */
#include "souk/lws.h"

#include "dl.h"

static souk_lws_t s_lws;

#define SOUK_LWS_NAME(name) "lws_" #name,
static const char *const s_names[] = { SOUK_LWS_FUNCTIONS(SOUK_LWS_NAME) };
#undef SOUK_LWS_NAME

static souk_dl_t s_lib = {
    .soname = "libwebsockets.so.17", .package = "libwebsockets17", .names = s_names,
    .count = sizeof s_names / sizeof s_names[0], .table = &s_lws,
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

_Static_assert(sizeof(souk_lws_t) == sizeof s_names / sizeof s_names[0] * sizeof(void *),
               "souk_lws_t is one function pointer per name");

int souk_lws_load(char *err, size_t len) { return souk_dl_load(&s_lib, err, len); }

const souk_lws_t *souk_lws(void) { return souk_dl_table(&s_lib); }
