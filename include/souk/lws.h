/* souk/lws.h: libwebsockets, loaded on first use instead of linked.
 *
 * Every actor is `souk` exec'd again, and only the gateway serves HTTP;
 * linking libwebsockets made each of them (every session actor) load it and
 * what it pulls in (libssl, libcap, libuv, libev, libz…) at exec, most of
 * what the dynamic loader does for a spawn. So `souk` does not link it:
 * src/lws.c dlopens libwebsockets.so.17 (Debian's libwebsockets17) the
 * first time a process asks, and resolves the functions souk calls into one
 * table. The headers stay a build dependency.
 *
 * Include this header instead of <libwebsockets.h>. Types, constants and
 * function names are libwebsockets' own: each name below is mapped to its
 * table entry, so call sites read as its documentation does and stay
 * unchanged (as souk/curl.h does for libcurl). lws_container_of and the
 * lwsl_* log macros are macros and need nothing. Calling a function souk
 * does not resolve yet fails at link time; add it to SOUK_LWS_FUNCTIONS and
 * to the names below. */
#ifndef SOUK_LWS_H
#define SOUK_LWS_H

#include <stddef.h>

#include <libwebsockets.h>

/* The libwebsockets functions souk calls, without their "lws_" prefix. */
#define SOUK_LWS_FUNCTIONS(X)                                                           \
    X(create_context) X(context_destroy) X(context_user) X(set_log_level)               \
    X(service) X(cancel_service) X(get_context) X(get_vhost_by_name)                    \
    X(adopt_descriptor_vhost_via_info) X(get_opaque_user_data) X(wsi_user)              \
    X(sul_schedule) X(sul_cancel) X(callback_on_writable) X(callback_http_dummy)        \
    X(hdr_copy) X(hdr_copy_fragment) X(hdr_custom_copy) X(hdr_total_length)             \
    X(add_http_header_by_name) X(add_http_header_by_token) X(add_http_header_status)    \
    X(finalize_http_header) X(http_transaction_completed) X(write)                     \
    X(is_final_fragment) X(set_timeout)

/* One pointer per function, typed from libwebsockets' own declaration. */
typedef struct {
#define SOUK_LWS_MEMBER(name) __typeof__(lws_##name) *name;
    SOUK_LWS_FUNCTIONS(SOUK_LWS_MEMBER)
#undef SOUK_LWS_MEMBER
} souk_lws_t;

/* Loads libwebsockets once per process (thread-safe; later calls answer at
 * once). SOUK_OK, or SOUK_EUNAVAIL with why (naming the library) in err. A
 * process that uses libwebsockets calls this at start and reports the
 * failure. */
int souk_lws_load(char *err, size_t len);
/* The table, loading it if needed. Aborts when libwebsockets cannot be
 * loaded: an lws call without a successful souk_lws_load first is a bug. */
const souk_lws_t *souk_lws(void);

#define lws_create_context (souk_lws()->create_context)
#define lws_context_destroy (souk_lws()->context_destroy)
#define lws_context_user (souk_lws()->context_user)
#define lws_set_log_level (souk_lws()->set_log_level)
#define lws_service (souk_lws()->service)
#define lws_cancel_service (souk_lws()->cancel_service)
#define lws_get_context (souk_lws()->get_context)
#define lws_get_vhost_by_name (souk_lws()->get_vhost_by_name)
#define lws_adopt_descriptor_vhost_via_info (souk_lws()->adopt_descriptor_vhost_via_info)
#define lws_get_opaque_user_data (souk_lws()->get_opaque_user_data)
#define lws_wsi_user (souk_lws()->wsi_user)
#define lws_sul_schedule (souk_lws()->sul_schedule)
#define lws_sul_cancel (souk_lws()->sul_cancel)
#define lws_callback_on_writable (souk_lws()->callback_on_writable)
#define lws_callback_http_dummy (souk_lws()->callback_http_dummy)
#define lws_hdr_copy (souk_lws()->hdr_copy)
#define lws_hdr_copy_fragment (souk_lws()->hdr_copy_fragment)
#define lws_hdr_custom_copy (souk_lws()->hdr_custom_copy)
#define lws_hdr_total_length (souk_lws()->hdr_total_length)
#define lws_add_http_header_by_name (souk_lws()->add_http_header_by_name)
#define lws_add_http_header_by_token (souk_lws()->add_http_header_by_token)
#define lws_add_http_header_status (souk_lws()->add_http_header_status)
#define lws_finalize_http_header (souk_lws()->finalize_http_header)
#define lws_http_transaction_completed (souk_lws()->http_transaction_completed)
#define lws_write (souk_lws()->write)
#define lws_is_final_fragment (souk_lws()->is_final_fragment)
#define lws_set_timeout (souk_lws()->set_timeout)

#endif
