/* curl: libcurl's functions, resolved from libcurl.so.4 on first use (see
 * souk/curl.h). The library stays loaded for the life of the process. */
#include "souk/curl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"

/* libcurl4's soname: the ABI the headers we build with describe. */
#define LIBCURL "libcurl.so.4"

static souk_curl_t s_curl;
static bool s_loaded;
static char s_error[256];    /* why the load failed */
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_load(void)
{
    void *h = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(s_error, sizeof s_error, "%s (Debian package libcurl4)", dlerror());
        return;
    }
    const char *missing = NULL;
#define SOUK_CURL_RESOLVE(name)                                                         \
    if (!missing && !(*(void **)&s_curl.name = dlsym(h, "curl_" #name)))               \
        missing = "curl_" #name;
    SOUK_CURL_FUNCTIONS(SOUK_CURL_RESOLVE)
#undef SOUK_CURL_RESOLVE
    if (missing) {
        snprintf(s_error, sizeof s_error, "%s: no symbol %s (libcurl too old?)", LIBCURL, missing);
        memset(&s_curl, 0, sizeof s_curl);
        dlclose(h);
        return;
    }
    s_loaded = true;
}

int souk_curl_load(char *err, size_t len)
{
    pthread_once(&s_once, s_load);
    if (s_loaded)
        return SOUK_OK;
    if (len)
        snprintf(err, len, "%s", s_error);
    return SOUK_EUNAVAIL;
}

const souk_curl_t *souk_curl(void)
{
    pthread_once(&s_once, s_load);
    if (!s_loaded) {
        fprintf(stderr, "souk: libcurl called without souk_curl_load: %s\n", s_error);
        abort();
    }
    return &s_curl;
}
