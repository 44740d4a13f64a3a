/* souk metrics: counters, gauges and histograms, in Prometheus' text format.
 *
 * Every metric family is one line of SOUK_METRICS below (name, type, help):
 * that table gives `GET /metrics` its # HELP and # TYPE lines and tells the
 * supervisor which samples add up across processes.
 *
 * Producer side — any actor, any code of src/. The process has one registry;
 * the code counts where the event happens, with the labels preformatted:
 *
 *     souk_metric_add("souk_tool_calls_total", "tool=\"get_order\",result=\"ok\"", 1);
 *     souk_metric_set("souk_outbox_messages", "state=\"queued\"", 12);
 *     souk_metric_observe("souk_llm_request_duration_seconds", "", seconds);
 *
 * and nothing else: souk_actor_heartbeat() sends the registry (samples only,
 * souk_metrics_render) with every heartbeat. The families of the clients
 * being added (LLM, voice, DynamoDB, Pinecone) are declared already, so
 * wiring one in is the one-liner where the event happens, e.g.
 *
 *     souk_metric_add("souk_llm_tokens_total", "kind=\"prompt\"", usage.prompt_tokens);
 *     souk_metric_add("souk_llm_requests_total", "result=\"ok\"", 1);
 *     souk_metric_observe("souk_llm_request_duration_seconds", "", secs);
 *     souk_metric_observe("souk_voice_transcription_duration_seconds", "", secs);
 *     souk_metric_observe("souk_store_request_duration_seconds", "op=\"PutItem\"", secs);
 *     souk_metric_observe("souk_vector_query_duration_seconds", "", secs);
 *
 * (the library's code may count too: src/ knows no actor, only this
 * registry). Anything else: add its line at the end of SOUK_METRICS
 * (names: souk_ prefix, _total for counters, _seconds for durations). A
 * name that is not in the table is refused (SOUK_EINVAL), so every exposed
 * family is documented.
 *
 * Consumer side — the supervisor. A souk_metrics_merge_t adds up the
 * fragments of every actor by series (name and labels): counters and
 * histograms of processes that exited are kept (folded in once, so totals
 * never go down when an actor restarts), gauges only while their process
 * lives. souk_metrics_merge_render() writes the whole exposition.
 *
 * Not thread-safe: an actor is one thread. Label values must not hold '"',
 * '\\' or a newline (they are names, codes and states, not user text). */
#ifndef SOUK_METRICS_H
#define SOUK_METRICS_H

#include <stdbool.h>
#include <stddef.h>

/* X(name, type, help) — type: counter, gauge or histogram (seconds). */
#define SOUK_METRICS(X)                                                                            \
    X(souk_webhook_requests_total, counter, "HTTP requests answered by the gateway, by route and status") \
    X(souk_webhook_duration_seconds, histogram, "Webhook answer time: request headers to the answer written") \
    X(souk_reply_duration_seconds, histogram, "End to end: webhook received to the reply settled (path inline or later)") \
    X(souk_dedupe_hits_total, counter, "Repeated MessageSids answered without processing (where: gateway memory or the store)") \
    X(souk_tool_calls_total, counter, "Tool calls executed, by tool and result") \
    X(souk_tool_call_duration_seconds, histogram, "Tool call execution time, by tool") \
    X(souk_llm_request_duration_seconds, histogram, "LLM request time") \
    X(souk_llm_tokens_total, counter, "LLM tokens used, by kind (prompt, completion)") \
    X(souk_llm_requests_total, counter, "LLM requests, by result (ok, error, timeout)") \
    X(souk_voice_transcription_duration_seconds, histogram, "Voice note download and transcription time") \
    X(souk_store_request_duration_seconds, histogram, "Remote store requests (DynamoDB), by operation") \
    X(souk_vector_query_duration_seconds, histogram, "Remote vector index queries (Pinecone)") \
    X(souk_sends_total, counter, "Outbound sends, by channel (twilio, console, webhook) and result") \
    X(souk_send_duration_seconds, histogram, "Outbound send time: request to Twilio (or the webhook) until its answer") \
    X(souk_send_errors_total, counter, "Outbound sends that got an error, by Twilio error code (or HTTP status)") \
    X(souk_outbox_messages, gauge, "Outbox rows by state") \
    X(souk_delivery_updates_total, counter, "Twilio status callbacks received by the sender, by status") \
    X(souk_sessions_live, gauge, "Live session actors") \
    X(souk_session_hibernations_total, counter, "Idle sessions that gave back their store handle and spare links") \
    X(souk_quarantined_users, gauge, "Users quarantined after repeated session crashes") \
    X(souk_actor_restarts_total, counter, "Actor restarts, by role") \
    X(souk_actor_hung_total, counter, "Actors killed for silence or a start time-out, by role") \
    X(souk_actors_hung, gauge, "Actors currently hung (killed, not yet reaped)") \
    X(souk_actor_queue_depth, gauge, "Work waiting in actors' queues, by role (from heartbeats)") \
    X(souk_actors, gauge, "Actor processes alive, by role")

typedef enum { SOUK_METRIC_COUNTER, SOUK_METRIC_GAUGE, SOUK_METRIC_HISTOGRAM } souk_metric_type_t;

/* Upper bounds (seconds) of every histogram's buckets; +Inf is implied.
 * Fixed, so fragments from every process add up bucket by bucket; 15 s is
 * Twilio's webhook limit. */
#define SOUK_METRIC_BUCKETS 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30

/* ---- producer: this process's registry ---------------------------------- */

/* Counter += v (v >= 0). SOUK_OK, SOUK_EINVAL (unknown name, wrong type,
 * bad labels or v < 0), SOUK_ENOMEM. */
int souk_metric_add(const char *name, const char *labels, double v);
/* Gauge = v. */
int souk_metric_set(const char *name, const char *labels, double v);
/* One histogram observation, in seconds. */
int souk_metric_observe(const char *name, const char *labels, double seconds);

/* The registry's samples in text format, no comments ("name{labels} value"
 * lines; "" when empty). Caller frees; NULL when out of memory. */
char *souk_metrics_render(void);

/* Forgets every series (tests, and a forked child that must not report
 * its parent's counts). */
void souk_metrics_reset(void);

/* ---- consumer: adding up fragments -------------------------------------- */

typedef struct souk_metrics_merge souk_metrics_merge_t;

/* Caller owns the result (souk_metrics_merge_destroy); NULL when out of
 * memory. */
souk_metrics_merge_t *souk_metrics_merge_new(void);
void souk_metrics_merge_destroy(souk_metrics_merge_t **self_p);

/* Adds every sample of a fragment (souk_metrics_render's format); with
 * cumulative_only, gauges are skipped (a retired process's fragment).
 * Malformed lines are skipped. Returns the number of samples added. */
int souk_metrics_merge_add(souk_metrics_merge_t *self, const char *fragment, bool cumulative_only);

/* Adds all of `other`'s samples (cumulative ones only, when asked). */
void souk_metrics_merge_fold(souk_metrics_merge_t *self, const souk_metrics_merge_t *other,
                             bool cumulative_only);

/* The whole exposition (text/plain; version=0.0.4): for each family of
 * SOUK_METRICS in order, # HELP, # TYPE and its samples sorted (histogram
 * buckets by bound); a family without samples gets one zero sample without
 * labels. Caller frees; NULL when out of memory. */
char *souk_metrics_merge_render(const souk_metrics_merge_t *self);

/* The value of one series ("name" or "name{labels}" exactly as rendered), or
 * 0 when absent. */
double souk_metrics_merge_get(const souk_metrics_merge_t *self, const char *series);

#define SOUK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
