/* lws: libwebsockets' functions, resolved from libwebsockets.so.17 on first
 * use (see souk/lws.h). The library stays loaded for the life of the
 * process. */
#include "souk/lws.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"

/* libwebsockets17's soname: the ABI the headers we build with describe. */
#define LIBLWS "libwebsockets.so.17"

static souk_lws_t s_lws;
static bool s_loaded;
static char s_error[256];    /* why the load failed */
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_load(void)
{
    void *h = dlopen(LIBLWS, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(s_error, sizeof s_error, "%s (Debian package libwebsockets17)", dlerror());
        return;
    }
    const char *missing = NULL;
#define SOUK_LWS_RESOLVE(name)                                                          \
    if (!missing && !(*(void **)&s_lws.name = dlsym(h, "lws_" #name)))                 \
        missing = "lws_" #name;
    SOUK_LWS_FUNCTIONS(SOUK_LWS_RESOLVE)
#undef SOUK_LWS_RESOLVE
    if (missing) {
        snprintf(s_error, sizeof s_error, "%s: no symbol %s (libwebsockets too old?)", LIBLWS,
                 missing);
        memset(&s_lws, 0, sizeof s_lws);
        dlclose(h);
        return;
    }
    s_loaded = true;
}

int souk_lws_load(char *err, size_t len)
{
    pthread_once(&s_once, s_load);
    if (s_loaded)
        return SOUK_OK;
    if (len)
        snprintf(err, len, "%s", s_error);
    return SOUK_EUNAVAIL;
}

const souk_lws_t *souk_lws(void)
{
    pthread_once(&s_once, s_load);
    if (!s_loaded) {
        fprintf(stderr, "souk: libwebsockets called without souk_lws_load: %s\n", s_error);
        abort();
    }
    return &s_lws;
}
