/* souk/curl.h: libcurl, loaded on first use instead of linked.
 *
 * Every actor is `souk` exec'd again, and most (every session actor) never
 * make an HTTP request; linking libcurl made each of them load its ~19
 * libraries (Kerberos, LDAP, nghttp2, ssh2, …) at exec, a third of a spawn.
 * So `souk` does not link it: src/curl.c dlopens libcurl.so.4 (Debian's
 * libcurl4) the first time a process asks, and resolves the functions souk
 * calls into one table. The headers stay a build dependency.
 *
 * Include this header instead of <curl/curl.h>. Types, constants and function
 * names are libcurl's own: each name below is mapped to its table entry, so
 * call sites read as libcurl's documentation does and stay unchanged. That
 * is why names are mapped rather than wrapped (souk_curl_easy_setopt…): a
 * second name per function would add nothing but a translation to learn.
 * Calling a function souk does not resolve yet fails at link time; add it to
 * SOUK_CURL_FUNCTIONS and to the names below.
 *
 * curl's gcc checks of curl_easy_setopt/getinfo argument types are macros
 * around the linked functions, so they are off here; meson.build compiles
 * the call sites once more with SOUK_CURL_TYPECHECK (libcurl's plain
 * declarations and checks, nothing mapped) and never links the result. */
#ifndef SOUK_CURL_H
#define SOUK_CURL_H

#include <stddef.h>

#if !defined(SOUK_CURL_TYPECHECK) && !defined(CURL_DISABLE_TYPECHECK)
#define CURL_DISABLE_TYPECHECK
#endif
#include <curl/curl.h>

/* The libcurl functions souk calls, without their "curl_" prefix. */
#define SOUK_CURL_FUNCTIONS(X)                                                          \
    X(global_init) X(global_cleanup)                                                    \
    X(easy_init) X(easy_cleanup) X(easy_reset) X(easy_perform) X(easy_setopt) X(easy_getinfo)         \
    X(easy_strerror) X(easy_escape) X(free) X(getdate)                                  \
    X(slist_append) X(slist_free_all)                                                   \
    X(multi_init) X(multi_cleanup) X(multi_setopt) X(multi_add_handle)                  \
    X(multi_remove_handle) X(multi_socket_action) X(multi_assign) X(multi_info_read)    \
    X(multi_perform) X(multi_poll)

/* One pointer per function, typed from libcurl's own declaration (variadic
 * ones stay variadic): easy_setopt is a CURLcode (*)(CURL *, CURLoption, ...). */
typedef struct {
#define SOUK_CURL_MEMBER(name) __typeof__(curl_##name) *name;
    SOUK_CURL_FUNCTIONS(SOUK_CURL_MEMBER)
#undef SOUK_CURL_MEMBER
} souk_curl_t;

/* Loads libcurl once per process (thread-safe; later calls answer at once).
 * SOUK_OK, or SOUK_EUNAVAIL with why (naming the library) in err. A process
 * that uses curl calls this at start and reports the failure. */
int souk_curl_load(char *err, size_t len);
/* The table, loading it if needed. Aborts when libcurl cannot be loaded: a
 * curl call without a successful souk_curl_load first is a bug. */
const souk_curl_t *souk_curl(void);

#ifndef SOUK_CURL_TYPECHECK
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init (souk_curl()->global_init)
#define curl_global_cleanup (souk_curl()->global_cleanup)
#define curl_easy_init (souk_curl()->easy_init)
#define curl_easy_cleanup (souk_curl()->easy_cleanup)
#define curl_easy_reset (souk_curl()->easy_reset)
#define curl_easy_perform (souk_curl()->easy_perform)
#define curl_easy_setopt (souk_curl()->easy_setopt)
#define curl_easy_getinfo (souk_curl()->easy_getinfo)
#define curl_easy_strerror (souk_curl()->easy_strerror)
#define curl_easy_escape (souk_curl()->easy_escape)
#define curl_free (souk_curl()->free)
#define curl_getdate (souk_curl()->getdate)
#define curl_slist_append (souk_curl()->slist_append)
#define curl_slist_free_all (souk_curl()->slist_free_all)
#define curl_multi_init (souk_curl()->multi_init)
#define curl_multi_cleanup (souk_curl()->multi_cleanup)
#define curl_multi_setopt (souk_curl()->multi_setopt)
#define curl_multi_add_handle (souk_curl()->multi_add_handle)
#define curl_multi_remove_handle (souk_curl()->multi_remove_handle)
#define curl_multi_socket_action (souk_curl()->multi_socket_action)
#define curl_multi_assign (souk_curl()->multi_assign)
#define curl_multi_info_read (souk_curl()->multi_info_read)
#define curl_multi_perform (souk_curl()->multi_perform)
#define curl_multi_poll (souk_curl()->multi_poll)
#endif

#endif
