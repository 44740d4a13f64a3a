/* The LLM agent end to end: a real `souk serve` (every actor, the real tool
 * actors and store, the demo catalogue imported first) with SOUK_LLM=openai
 * and OPENAI_BASE_URL pointing at tests/fakes/openai_fake.py — a fake of the
 * OpenAI API, a cloud service that cannot run here, following its documented
 * contract and playing a scripted model. Each conversation is checked on
 * what the user is told and on what the store holds afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assert_text.h"
#include "harness.h"
#include "openai_fake.h"

#ifndef SOUK_SRC_DIR
#define SOUK_SRC_DIR "."
#endif

#define ANA "15550102001"
#define BILAL "15550102002"
#define MASCARA "BEA-ESS-ESS-001"   /* Essence Mascara Lash Princess, $9.99 */

#if defined(__SANITIZE_ADDRESS__)
#define WAIT_MS 30000
#else
#define WAIT_MS 15000
#endif

typedef struct {
    harness_t h;
    openai_fake_t fake;
    bool started;
} llm_shop_t;

static int s_setup(void **state)
{
    llm_shop_t *s = calloc(1, sizeof *s);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!s || openai_fake_start(&s->fake) != 0)
        return -1;
    char base[96];
    snprintf(base, sizeof base, "OPENAI_BASE_URL=%s", s->fake.base_url);
    if (harness_prepare(&s->h) != 0)
        return -1;
    s->started = true;
    if (harness_cli(&s->h, "import " SOUK_SRC_DIR "/data/demo/products.jsonl", NULL) != 0)
        return -1;
    /* heartbeats every 100 ms: a session silent for 300 ms is killed as
     * hung, so a model call that did not keep it beating would show */
    const char *env[] = { "SOUK_AGENT=builtin", "SOUK_DEBOUNCE_MS=0", "SOUK_LLM=openai",
                          base, "OPENAI_API_KEY=" FAKE_KEY, "SOUK_LLM_TIMEOUT_MS=1500",
                          "SOUK_LLM_CLASSIFY=hybrid", "SOUK_HEARTBEAT_MS=100", NULL };
    if (harness_start_prepared(&s->h, env) != 0 || harness_events_join(&s->h, 5000) != 0)
        return -1;
    *state = s;
    return 0;
}

static int s_teardown(void **state)
{
    llm_shop_t *s = *state;
    int code = s->started ? harness_stop(&s->h, false) : 0;
    openai_fake_stop(&s->fake);
    curl_global_cleanup();
    free(s);
    return code == 0 ? 0 : -1;
}

/* Sends text; the reply, inline or (acknowledged first) through the sender.
 * *answer gets how it travelled. Caller frees. */
static char *s_say(llm_shop_t *s, const char *waid, const char *text, char answer[16])
{
    harness_reply_t r = { 0 };
    assert_int_equal(harness_send(&s->h, waid, "Ana", text, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    snprintf(answer, 16, "%s", r.answer);
    char *reply = NULL;
    if (strcmp(r.answer, "inline") == 0)
        reply = strdup(r.message ? r.message : "");
    else if (strcmp(r.answer, "later") == 0)
        assert_int_equal(harness_wait_outbound(&s->h, waid, WAIT_MS, &reply), 0);
    harness_reply_clear(&r);
    assert_non_null(reply);
    return reply;
}

/* The orders of waid, as the merchant sees them. Caller decrefs. */
static json_t *s_orders(llm_shop_t *s, const char *waid)
{
    json_t *doc = harness_cli_json(&s->h, "orders --json");
    assert_non_null(doc);
    json_t *mine = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(doc, "orders"), i, o)
        if (strcmp(json_string_value(json_object_get(o, "user")), waid) == 0)
            json_array_append(mine, o);
    json_decref(doc);
    return mine;
}

static const char *s_str(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static const char ORDER_SCRIPT[] =
    "{\"rules\":["
    "{\"kind\":\"chat\",\"tool_calls\":[{\"name\":\"search_products\",\"arguments\":{\"query\":\"essence mascara\"}}]},"
    "{\"kind\":\"chat\",\"tool_calls\":[{\"name\":\"place_order\",\"arguments\":{\"items\":[{\"product_id\":\"" MASCARA "\",\"quantity\":2}]}}]},"
    "{\"kind\":\"chat\",\"content\":\"Done! Your order {tool.order_id} comes to {tool.total} {tool.currency}.\"}]}";

/* Places an order for waid through the scripted model; its id into id. */
static void s_order(llm_shop_t *s, const char *waid, char id[32])
{
    assert_int_equal(openai_fake_script(&s->fake, ORDER_SCRIPT), 0);
    char answer[16];
    /* the built-in classifier is sure this is place_order: no classify
     * call, and the acknowledged path */
    char *reply = s_say(s, waid, "I want to buy 2 essence mascaras", answer);
    assert_string_equal(answer, "later");
    assert_has(reply, "Done! Your order SK-");
    assert_has(reply, "19.98 USD");
    json_t *mine = s_orders(s, waid);
    assert_int_equal(json_array_size(mine), 1);
    json_t *o = json_array_get(mine, 0);
    snprintf(id, 32, "%s", s_str(o, "id"));
    assert_has(reply, id);
    json_t *item = json_array_get(json_object_get(o, "items"), 0);
    assert_string_equal(s_str(item, "sku"), MASCARA);
    assert_int_equal(json_integer_value(json_object_get(item, "quantity")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "total_cents")), 1998);
    json_decref(mine);
    free(reply);
}

static void test_llm_places_order(void **state)
{
    llm_shop_t *s = *state;
    assert_int_equal(openai_fake_reset(&s->fake), 0);
    char id[32];
    s_order(s, ANA, id);
    assert_int_equal(openai_fake_count(&s->fake, "classify"), 0); /* saved */
    assert_int_equal(openai_fake_count(&s->fake, "chat"), 3);
    /* every request carried the key; none carried the user's number */
    json_t *reqs = openai_fake_requests(&s->fake);
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r)
        assert_true(json_is_true(json_object_get(r, "authorised")));
    char *dump = json_dumps(reqs, 0);
    assert_null(strstr(dump, ANA));
    free(dump);
    json_decref(reqs);
    /* an unsure message: the model classifies it */
    assert_int_equal(openai_fake_script(&s->fake, "{\"rules\":[{\"kind\":\"classify\","
        "\"intent\":\"general\"},{\"kind\":\"chat\",\"content\":\"Happy to help.\"}]}"), 0);
    char answer[16];
    char *reply = s_say(s, ANA, "what about it", answer);
    assert_string_equal(answer, "inline");
    assert_string_equal(reply, "Happy to help.");
    assert_int_equal(openai_fake_count(&s->fake, "classify"), 1);
    free(reply);
    /* the calls and their tokens reach /metrics (on the session's heartbeats) */
    assert_true(harness_metric_await(&s->h, "souk_llm_requests_total{result=\"ok\"}", 5, WAIT_MS)
                >= 5);
    assert_true(harness_metric_await(&s->h, "souk_llm_tokens_total{kind=\"prompt\"}", 1, WAIT_MS)
                >= 1);
}

static void test_llm_foreign_identity_refused(void **state)
{
    llm_shop_t *s = *state;
    assert_int_equal(openai_fake_reset(&s->fake), 0);
    char bilal_order[32];
    s_order(s, BILAL, bilal_order);
    /* Ana's model tries Bilal's order: with his id as an extra argument
     * (refused before any tool runs), then bare (not found: not hers) */
    char script[1024];
    snprintf(script, sizeof script, "{\"rules\":["
        "{\"kind\":\"classify\",\"intent\":\"order_status\",\"times\":-1},"
        "{\"kind\":\"chat\",\"tool_calls\":[{\"name\":\"cancel_order\",\"arguments\":"
        "{\"order_id\":\"%s\",\"user_id\":\"" BILAL "\"}}]},"
        "{\"kind\":\"chat\",\"tool_calls\":[{\"name\":\"cancel_order\",\"arguments\":"
        "{\"order_id\":\"%s\"}}]},"
        "{\"kind\":\"chat\",\"content\":\"I could not find that order among yours.\"}]}",
        bilal_order, bilal_order);
    assert_int_equal(openai_fake_script(&s->fake, script), 0);
    char answer[16], text[96];
    snprintf(text, sizeof text, "cancel order %s", bilal_order);
    char *reply = s_say(s, ANA, text, answer);
    assert_has(reply, "could not find");
    free(reply);
    /* the model was told why, each time */
    json_t *reqs = openai_fake_requests(&s->fake);
    json_t *last = json_object_get(json_array_get(reqs, json_array_size(reqs) - 1), "body");
    char *msgs = json_dumps(json_object_get(last, "messages"), 0);
    assert_has(msgs, "user_id");
    assert_has(msgs, "EINVAL");
    assert_has(msgs, "ENOTFOUND");
    free(msgs);
    json_decref(reqs);
    /* Bilal's order is untouched, and Ana has none */
    json_t *his = s_orders(s, BILAL);
    assert_int_equal(json_array_size(his), 1);
    assert_string_equal(s_str(json_array_get(his, 0), "status"), "pending");
    json_decref(his);
    json_t *hers = s_orders(s, ANA);
    size_t n_hers = json_array_size(hers);
    json_decref(hers);
    json_t *all = harness_cli_json(&s->h, "orders --json");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(all, "orders"), i, o)
        assert_string_not_equal(s_str(o, "status"), "cancelled");
    json_decref(all);
    (void)n_hers;
}

static void test_llm_falls_back_to_builtin(void **state)
{
    llm_shop_t *s = *state;
    static const char *const scripts[] = {
        "{\"rules\":[{\"kind\":\"chat\",\"status\":500,\"times\":-1}]}",
        "{\"rules\":[{\"kind\":\"chat\",\"malformed\":true,\"times\":-1}]}",
        /* longer than SOUK_LLM_TIMEOUT_MS, and 25 heartbeat intervals */
        "{\"rules\":[{\"kind\":\"chat\",\"delay_ms\":2500,\"times\":-1}]}",
    };
    char name[32];
    snprintf(name, sizeof name, "s-%s", BILAL);
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(openai_fake_script(&s->fake, scripts[k]), 0);
        pid_t before = harness_actor_pid(&s->h, name);
        char answer[16];
        char *reply = s_say(s, BILAL, "show me essence mascara", answer);
        /* the built-in agent's search, from the real catalogue */
        assert_has(reply, "Essence Mascara Lash Princess");
        free(reply);
        if (before > 0)
            assert_int_equal(harness_actor_pid(&s->h, name), before); /* never killed as hung */
    }
    souk_msg_t ev;
    assert_int_not_equal(harness_wait_event(&s->h, "hung", "s-", 200, &ev), 0);
}

/* SOUK_EMBEDDER=openai: `souk import` embeds the catalogue through
 * /embeddings in batches (one refused with 429 and retried), `souk search`
 * embeds the query with the same model, and a query embedder of another
 * dimension or the local one is refused by the index. */
static void test_cloud_embeddings_import(void **state)
{
    llm_shop_t *s = *state;
    assert_int_equal(openai_fake_reset(&s->fake), 0);
    assert_int_equal(openai_fake_script(&s->fake, "{\"rules\":[{\"kind\":\"embeddings\","
                                                  "\"status\":429,\"retry_after\":0}]}"), 0);
    harness_t h = { 0 };
    assert_int_equal(harness_prepare(&h), 0);
    setenv("SOUK_EMBEDDER", "openai", 1);
    setenv("OPENAI_BASE_URL", s->fake.base_url, 1);
    setenv("OPENAI_API_KEY", FAKE_KEY, 1);
    setenv("SOUK_EMBED_DIM", "256", 1);
    assert_int_equal(harness_cli(&h, "import " SOUK_SRC_DIR "/data/demo/products.jsonl", NULL), 0);
    json_t *reqs = openai_fake_requests(&s->fake);
    size_t i, texts = 0;
    json_t *r;
    json_array_foreach(reqs, i, r) {
        json_t *body = json_object_get(r, "body");
        assert_int_equal(json_integer_value(json_object_get(body, "dimensions")), 256);
        assert_string_equal(s_str(body, "model"), "text-embedding-3-small");
        assert_true(json_array_size(json_object_get(body, "input")) <= 128);
        if (i > 0)
            texts += json_array_size(json_object_get(body, "input"));
    }
    assert_int_equal(texts, 194);           /* every product, in batches, after the 429 */
    assert_true(json_array_size(reqs) >= 3);
    json_decref(reqs);
    char *out = NULL;
    assert_int_equal(harness_cli(&h, "search mascara --limit 1", &out), 0);
    assert_has(out, MASCARA);
    free(out);
    assert_int_equal(openai_fake_count(&s->fake, "embeddings"), 4); /* + the query */
    /* the shop searches the same way: the tool actors embed the query */
    char base[96];
    snprintf(base, sizeof base, "OPENAI_BASE_URL=%s", s->fake.base_url);
    const char *env[] = { "SOUK_AGENT=builtin", "SOUK_DEBOUNCE_MS=0", "SOUK_EMBEDDER=openai",
                          "SOUK_EMBED_DIM=256", base, "OPENAI_API_KEY=" FAKE_KEY, NULL };
    assert_int_equal(harness_start_prepared(&h, env), 0);
    harness_reply_t said = { 0 };
    assert_int_equal(harness_send(&h, ANA, "Ana", "show me essence mascara", NULL, NULL, &said), 0);
    assert_string_equal(said.answer, "inline");
    assert_has(said.message, "Essence Mascara Lash Princess");
    harness_reply_clear(&said);
    assert_int_equal(openai_fake_count(&s->fake, "embeddings"), 5);
    assert_int_equal(harness_stop(&h, true), 0);
    setenv("SOUK_EMBED_DIM", "128", 1);
    assert_int_not_equal(harness_cli(&h, "search mascara --limit 1", NULL), 0);
    setenv("SOUK_EMBEDDER", "local", 1);
    assert_int_not_equal(harness_cli(&h, "search mascara --limit 1", NULL), 0);
    unsetenv("SOUK_EMBEDDER");
    unsetenv("SOUK_EMBED_DIM");
    harness_stop(&h, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llm_places_order),
        cmocka_unit_test(test_llm_foreign_identity_refused),
        cmocka_unit_test(test_llm_falls_back_to_builtin),
        cmocka_unit_test(test_cloud_embeddings_import),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
