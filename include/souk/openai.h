/* souk openai: a client for the OpenAI API (and any server that speaks it:
 * vLLM, llama.cpp's server, Ollama) — chat completions and embeddings.
 *
 * One client keeps one libcurl easy handle inside one multi handle, so the
 * connection (and its TLS session) is reused from call to call. A call is
 * synchronous for its caller but never deaf: while it waits, the client
 * calls opt.tick at least every tick_ms, so an actor keeps heartbeating
 * through a long model call (and through the back-off between attempts).
 *
 * Retries: 429, 5xx and network failures are tried again, with exponential
 * back-off and jitter, honouring Retry-After, while the call's deadline
 * (timeout_ms from the first attempt) allows; other statuses are final.
 *
 * Every answer is parsed here, at the edge, into typed structs: a body that
 * is not the documented JSON is SOUK_EPROTO, never a crash. The API key
 * travels only in the Authorization header; curl's verbose output is never
 * switched on, and no error text carries the key or a body the user wrote.
 *
 * Errors: SOUK_ETIMEDOUT (the deadline passed), SOUK_EUNAVAIL (no answer,
 * or 429/5xx on the last attempt), SOUK_EFORBIDDEN (401/403), SOUK_EINVAL
 * (another 4xx, or bad arguments), SOUK_EPROTO (malformed answer),
 * SOUK_ENOMEM. openai_last_error() says why in a sentence. A client
 * belongs to one thread. */
#ifndef SOUK_OPENAI_H
#define SOUK_OPENAI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct openai_s openai_t;

typedef void(openai_tick_fn)(void *arg);

typedef struct {
    const char *base_url;       /* "https://api.openai.com/v1" (no trailing slash needed) */
    const char *api_key;        /* NULL or "": no Authorization header */
    int timeout_ms;             /* one call, retries included; 0: 10000 */
    int retries;                /* attempts after the first; < 0: 2 */
    openai_tick_fn *tick;       /* may be NULL */
    void *tick_arg;
    int tick_ms;                /* 0: 250 */
} openai_options_t;

/* Totals since the client was made: what the metrics read. */
typedef struct {
    uint64_t calls;             /* calls made (a retried call counts once) */
    uint64_t failures;          /* calls that returned an error */
    uint64_t attempts;          /* HTTP requests sent, retries included */
    uint64_t tokens_in, tokens_out; /* usage.prompt_tokens / completion_tokens */
    uint64_t latency_ms;        /* summed over calls, back-off included */
} openai_stats_t;

/* What one call cost. */
typedef struct {
    int64_t latency_ms;
    int attempts;
    int64_t tokens_in, tokens_out;
    long status;                /* the last HTTP status; 0 without an answer */
} openai_call_t;

/* Copies the options' strings. SOUK_OK with *out (caller destroys), or
 * SOUK_EUNAVAIL (libcurl cannot be loaded) / SOUK_EINVAL / SOUK_ENOMEM with
 * a sentence in err. */
int openai_new(const openai_options_t *opt, openai_t **out, char *err, size_t errlen);
/* Closes the connection and frees; nulls *self_p; NULL is a no-op. */
void openai_destroy(openai_t **self_p);

/* Changes the tick callback (the session sets its own after making it). */
void openai_set_tick(openai_t *self, openai_tick_fn *tick, void *arg);

/* Changes the deadline of the calls that follow (ms, retries included). */
void openai_set_timeout(openai_t *self, int timeout_ms);

/* Why the last call failed ("" after a success). Static for the client. */
const char *openai_last_error(const openai_t *self);
void openai_stats(const openai_t *self, openai_stats_t *out);

/* POSTs body (JSON) to base_url + path ("/chat/completions") and parses a
 * 2xx answer into *reply (caller json_decref). info may be NULL. */
int openai_post(openai_t *self, const char *path, const json_t *body, json_t **reply,
                openai_call_t *info);

/* ---- chat completions --------------------------------------------------- */

typedef struct {
    char *id;                   /* "call_abc" */
    char *name;                 /* the function's name */
    char *arguments;            /* JSON text, as the model wrote it (unchecked) */
} openai_tool_call_t;

typedef struct {
    char *content;              /* the assistant's text; NULL when none */
    openai_tool_call_t *tool_calls;
    size_t n_tool_calls;
    char finish_reason[32];     /* "stop", "tool_calls", "length"… ("" when absent) */
    openai_call_t call;
} openai_chat_t;

/* POST /chat/completions with request (messages, tools, tool_choice,
 * response_format… as the caller built them) and reads choices[0].message.
 * SOUK_EPROTO when there is no choice, or a tool call without a function
 * name or with arguments that are not a string. out is filled on SOUK_OK
 * only; free it with openai_chat_clear. */
int openai_chat(openai_t *self, const json_t *request, openai_chat_t *out);
void openai_chat_clear(openai_chat_t *out);

/* ---- embeddings --------------------------------------------------------- */

/* POST /embeddings {model, input: texts, dimensions (when dim_param > 0)}
 * and writes n vectors of dim floats to out, by the answer's `index`, each
 * scaled to unit length (all zero stays zero). SOUK_EPROTO when an index is
 * missing, repeated or out of range, or a vector does not have dim numbers.
 * info may be NULL. */
int openai_embed(openai_t *self, const char *model, int dim_param, const char *const *texts,
                 size_t n, int dim, float *out, openai_call_t *info);

/* A Retry-After value (delta-seconds or an HTTP date) in ms from now; -1
 * when absent or unparsable. Exposed for tests. */
int64_t openai_retry_after_ms(const char *value);

#endif
