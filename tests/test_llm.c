/* The OpenAI client, the LLM agent's loop, its intent classifier and the
 * cloud embedder, in process, against tests/fakes/openai_fake.py — a fake
 * of the OpenAI API (a cloud service that cannot run here) that follows its
 * documented contract and plays scripted responses. The shop's tools are a
 * recording stand-in here; test_e2e_llm runs the real ones through souk
 * serve. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "openai_fake.h"
#include "souk/actor.h"
#include "souk/embed.h"
#include "souk/error.h"
#include "souk/llm.h"
#include "souk/openai.h"

static openai_fake_t s_fake;

static int s_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return openai_fake_start(&s_fake);
}

static int s_teardown(void **state)
{
    (void)state;
    openai_fake_stop(&s_fake);
    curl_global_cleanup();
    return 0;
}

static int s_each(void **state)
{
    (void)state;
    return openai_fake_reset(&s_fake);
}

static void s_count_tick(void *arg)
{
    (*(int *)arg)++;
}

static openai_t *s_client(const char *key, int timeout_ms, int *ticks)
{
    openai_options_t o = { .base_url = s_fake.base_url, .api_key = key, .timeout_ms = timeout_ms,
                           .retries = 2, .tick = ticks ? s_count_tick : NULL, .tick_arg = ticks,
                           .tick_ms = 20 };
    openai_t *c = NULL;
    char err[256];
    assert_int_equal(openai_new(&o, &c, err, sizeof err), SOUK_OK);
    return c;
}

static json_t *s_hello(void)
{
    return json_pack("{s:s, s:[{s:s, s:s}]}", "model", "gpt-4o-mini", "messages", "role", "user",
                     "content", "hello");
}

/* ---- the client ----------------------------------------------------------------- */

static void test_client_chat_and_usage(void **state)
{
    (void)state;
    openai_t *c = s_client(FAKE_KEY, 5000, NULL);
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"content\":\"Hi there\"}]}"), 0);
    json_t *req = s_hello();
    openai_chat_t r;
    assert_int_equal(openai_chat(c, req, &r), SOUK_OK);
    assert_string_equal(r.content, "Hi there");
    assert_string_equal(r.finish_reason, "stop");
    assert_true(r.call.tokens_in > 0 && r.call.tokens_out > 0);
    openai_chat_clear(&r);
    assert_int_equal(openai_chat(c, req, &r), SOUK_OK); /* the same connection, again */
    openai_chat_clear(&r);
    openai_stats_t st;
    openai_stats(c, &st);
    assert_int_equal(st.calls, 2);
    assert_int_equal(st.attempts, 2);
    assert_true(st.tokens_in >= 2);
    json_decref(req);
    openai_destroy(&c);
    assert_null(c);
}

static void test_client_wrong_key_refused(void **state)
{
    (void)state;
    openai_t *c = s_client("sk-wrong", 5000, NULL);
    json_t *req = s_hello();
    openai_chat_t r;
    assert_int_equal(openai_chat(c, req, &r), SOUK_EFORBIDDEN);
    assert_non_null(strstr(openai_last_error(c), "401"));
    assert_null(strstr(openai_last_error(c), "sk-wrong")); /* no secret in the error */
    assert_int_equal(openai_fake_count(&s_fake, "chat"), 1); /* not retried */
    json_decref(req);
    openai_destroy(&c);
}

static void test_client_malformed_json(void **state)
{
    (void)state;
    openai_t *c = s_client(FAKE_KEY, 5000, NULL);
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"malformed\":true}]}"), 0);
    json_t *req = s_hello();
    openai_chat_t r;
    assert_int_equal(openai_chat(c, req, &r), SOUK_EPROTO);
    assert_null(r.content);
    json_decref(req);
    openai_destroy(&c);
}

static void test_client_retries_5xx_then_gives_up(void **state)
{
    (void)state;
    openai_t *c = s_client(FAKE_KEY, 10000, NULL);
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"status\":503,\"times\":-1}]}"), 0);
    json_t *req = s_hello();
    openai_chat_t r;
    assert_int_equal(openai_chat(c, req, &r), SOUK_EUNAVAIL);
    assert_int_equal(r.call.attempts, 3);
    assert_int_equal(openai_fake_count(&s_fake, "chat"), 3);
    json_decref(req);
    openai_destroy(&c);
}

static void test_client_honours_retry_after(void **state)
{
    (void)state;
    int ticks = 0;
    openai_t *c = s_client(FAKE_KEY, 10000, &ticks);
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"status\":429,\"retry_after\":1},"
                                                 "{\"content\":\"ok\"}]}"), 0);
    json_t *req = s_hello();
    openai_chat_t r;
    assert_int_equal(openai_chat(c, req, &r), SOUK_OK);
    assert_int_equal(r.call.attempts, 2);
    assert_true(r.call.latency_ms >= 1000);  /* waited what Retry-After asked */
    assert_true(ticks >= 10);                /* and ticked meanwhile */
    openai_chat_clear(&r);
    json_decref(req);
    openai_destroy(&c);
}

static void test_client_timeout_ticks(void **state)
{
    (void)state;
    int ticks = 0;
    openai_t *c = s_client(FAKE_KEY, 600, &ticks);
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"delay_ms\":1500,"
                                                 "\"content\":\"late\"}]}"), 0);
    json_t *req = s_hello();
    openai_chat_t r;
    assert_int_equal(openai_chat(c, req, &r), SOUK_ETIMEDOUT);
    assert_true(ticks >= 5);
    json_decref(req);
    openai_destroy(&c);
}

/* Answers that are JSON but not a chat completion: an error, never a crash. */
static void test_client_odd_answers(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "[]", "{}", "{\"choices\":[]}", "{\"choices\":{}}", "{\"choices\":[{}]}",
        "{\"choices\":[{\"message\":{\"content\":42}}]}",
        "{\"choices\":[{\"message\":{\"content\":null}}]}",
        "{\"choices\":[{\"message\":{\"tool_calls\":{}}}]}",
        "{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{\"name\":\"x\",\"arguments\":{}}}]}}]}",
        "{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"a\"}}],\"choices\":[]}",
        "\"just a string\"", "",
    };
    openai_t *c = s_client(FAKE_KEY, 5000, NULL);
    json_t *req = s_hello();
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        json_t *rule = json_pack("{s:[{s:s}]}", "rules", "raw", bodies[i]);
        char *text = json_dumps(rule, 0);
        assert_int_equal(openai_fake_script(&s_fake, text), 0);
        free(text);
        json_decref(rule);
        openai_chat_t r;
        int rc = openai_chat(c, req, &r);
        if (rc != SOUK_EPROTO)
            fail_msg("body %zu (%s): %s", i, bodies[i], souk_errname(rc));
        assert_null(r.content);
        assert_int_equal(r.n_tool_calls, 0);
    }
    /* embeddings too */
    float v[8];
    const char *t = "x";
    static const char *const emb[] = {
        "{\"data\":[]}", "{\"data\":[{\"index\":3,\"embedding\":[1,2,3,4,5,6,7,8]}]}",
        "{\"data\":[{\"index\":0,\"embedding\":[1,2,\"x\",4,5,6,7,8]}]}",
        "{\"data\":[{\"index\":0,\"embedding\":[1,2,3]}]}", "{\"data\":{}}",
    };
    for (size_t i = 0; i < sizeof emb / sizeof *emb; i++) {
        json_t *rule = json_pack("{s:[{s:s}]}", "rules", "raw", emb[i]);
        char *text = json_dumps(rule, 0);
        assert_int_equal(openai_fake_script(&s_fake, text), 0);
        free(text);
        json_decref(rule);
        assert_int_equal(openai_embed(c, "text-embedding-3-small", 8, &t, 1, 8, v, NULL),
                         SOUK_EPROTO);
    }
    json_decref(req);
    openai_destroy(&c);
}

static void test_retry_after_parse(void **state)
{
    (void)state;
    assert_int_equal(openai_retry_after_ms("2"), 2000);
    assert_int_equal(openai_retry_after_ms(" 0.5 "), 500);
    assert_int_equal(openai_retry_after_ms("soon"), -1);
    assert_int_equal(openai_retry_after_ms(NULL), -1);
    assert_int_equal(openai_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
}

/* ---- the agent loop, with a recording stand-in for the tools ---------------- */

typedef struct {
    char calls[8][64];
    char args[8][256];
    char keys[8][64];
    int n;
} tools_rec_t;

static int s_tool(void *arg, const char *tool, const char *args_json, const char *idem_key,
                  char **result_json, char **error)
{
    tools_rec_t *r = arg;
    if (r->n < 8) {
        snprintf(r->calls[r->n], sizeof r->calls[0], "%s", tool);
        snprintf(r->args[r->n], sizeof r->args[0], "%s", args_json);
        snprintf(r->keys[r->n], sizeof r->keys[0], "%s", idem_key ? idem_key : "");
        r->n++;
    }
    *error = NULL;
    if (strcmp(tool, "search_products") == 0)
        *result_json = strdup("[{\"product_id\":\"BEA-ESS-ESS-001\",\"name\":\"Essence Mascara\","
                              "\"price\":9.99,\"currency\":\"USD\",\"stock\":99,\"score\":0.9}]");
    else if (strcmp(tool, "place_order") == 0)
        *result_json = strdup("{\"order_id\":\"SK-7K3Q9\",\"status\":\"placed\",\"total\":19.98,"
                              "\"currency\":\"USD\",\"items\":[]}");
    else if (strcmp(tool, "get_product") == 0 && strstr(args_json, "BEA-CHI-LIP-004"))
        *result_json = strdup("{\"product_id\":\"BEA-CHI-LIP-004\",\"name\":\"Red Lipstick\","
                              "\"price\":11.49,\"currency\":\"USD\",\"stock\":3,"
                              "\"description\":\"long text\"}");
    else {
        *error = strdup("not found");
        return SOUK_ENOTFOUND;
    }
    return SOUK_OK;
}

static llm_t *s_llm(llm_classify_t mode)
{
    llm_options_t o = { .base_url = s_fake.base_url, .api_key = FAKE_KEY, .model = "gpt-4o-mini",
                        .classify = mode, .timeout_ms = 3000, .max_steps = 5,
                        .shop_name = "Test Shop" };
    llm_t *l = NULL;
    char err[256];
    assert_int_equal(llm_new(&o, &l, err, sizeof err), SOUK_OK);
    return l;
}

/* The tool messages the fake received in its last chat request. */
static json_t *s_last_tool_messages(void)
{
    json_t *reqs = openai_fake_requests(&s_fake), *tools = json_array();
    json_t *last = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r)
        if (strcmp(json_string_value(json_object_get(r, "kind")), "chat") == 0)
            last = json_object_get(r, "body");
    json_t *m;
    json_array_foreach(json_object_get(last, "messages"), i, m)
        if (strcmp(json_string_value(json_object_get(m, "role")), "tool") == 0)
            json_array_append(tools, m);
    json_decref(reqs);
    return tools;
}

static void test_agent_orders_through_tools(void **state)
{
    (void)state;
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":["
        "{\"kind\":\"chat\",\"tool_calls\":[{\"name\":\"search_products\",\"arguments\":{\"query\":\"mascara\"}}]},"
        "{\"kind\":\"chat\",\"tool_calls\":[{\"name\":\"place_order\",\"arguments\":{\"items\":[{\"product_id\":\"BEA-ESS-ESS-001\",\"quantity\":2}]}}]},"
        "{\"kind\":\"chat\",\"content\":\"Done: order {tool.order_id}, total {tool.total} {tool.currency}.\"}]}"), 0);
    llm_t *l = s_llm(LLM_CLASSIFY_NEVER);
    agent_t *fb = agent_new(NULL);
    tools_rec_t rec = { .n = 0 };
    llm_input_t in = { .in = { .waid = "15550101001", .text = "2 mascaras please",
                               .turn_id = "SMturn1", .call_tool = s_tool, .tool_arg = &rec } };
    agent_output_t out;
    llm_turn_info_t info;
    assert_int_equal(llm_turn(l, fb, &in, &out, &info), SOUK_OK);
    assert_string_equal(out.reply, "Done: order SK-7K3Q9, total 19.98 USD.");
    assert_true(out.changed);
    assert_false(info.fallback);
    assert_int_equal(info.steps, 3);
    assert_int_equal(rec.n, 2);
    assert_string_equal(rec.calls[1], "place_order");
    assert_string_equal(rec.keys[0], "");              /* a read needs no key */
    assert_string_equal(rec.keys[1], "SMturn1:1");     /* a state change has one */
    /* the next turn knows what was shown, in the built-in agent's format */
    json_t *st = json_loads(out.state_json, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(
                            json_object_get(st, "shown"), 0), "sku")), "BEA-ESS-ESS-001");
    json_decref(st);
    /* the model saw no identity: no tool schema has a user field */
    json_t *reqs = openai_fake_requests(&s_fake);
    char *dump = json_dumps(reqs, 0);
    assert_null(strstr(dump, "15550101001"));
    assert_null(strstr(dump, "\"user_id\""));
    free(dump);
    json_decref(reqs);
    llm_stats_t ls;
    llm_stats(l, &ls);
    assert_int_equal(ls.calls, 3);
    assert_true(ls.tokens_in > 0 && ls.tokens_out > 0);
    agent_output_clear(&out);
    agent_destroy(&fb);
    llm_destroy(&l);
}

/* A model that misquotes the total of the order it placed: the reply is
 * written from the tool's result instead. */
static void test_agent_total_from_tool_result(void **state)
{
    (void)state;
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":["
        "{\"kind\":\"chat\",\"tool_calls\":[{\"name\":\"place_order\",\"arguments\":{\"items\":[{\"product_id\":\"BEA-ESS-ESS-001\",\"quantity\":2}]}}]},"
        "{\"kind\":\"chat\",\"content\":\"Done: order SK-7K3Q9, total 5.00 USD.\"}]}"), 0);
    llm_t *l = s_llm(LLM_CLASSIFY_NEVER);
    agent_t *fb = agent_new(NULL);
    tools_rec_t rec = { .n = 0 };
    llm_input_t in = { .in = { .waid = "15550101001", .text = "yes, order them",
                               .turn_id = "SMturn4", .call_tool = s_tool, .tool_arg = &rec } };
    agent_output_t out;
    assert_int_equal(llm_turn(l, fb, &in, &out, NULL), SOUK_OK);
    assert_null(strstr(out.reply, "5.00"));
    assert_non_null(strstr(out.reply, "SK-7K3Q9"));
    assert_non_null(strstr(out.reply, "19.98 USD"));
    agent_output_clear(&out);
    agent_destroy(&fb);
    llm_destroy(&l);
}

/* The last chat request's messages, as the fake received them. */
static json_t *s_last_chat_messages(void)
{
    json_t *reqs = openai_fake_requests(&s_fake), *msgs = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r)
        if (strcmp(json_string_value(json_object_get(r, "kind")), "chat") == 0)
            msgs = json_object_get(json_object_get(r, "body"), "messages");
    json_incref(msgs);
    json_decref(reqs);
    return msgs;
}

/* A follow-up: the products shown last turn are fetched again (today's
 * price, not the remembered one), and the history is cut to its token
 * budget, newest kept. */
static void test_agent_follow_up_context(void **state)
{
    (void)state;
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"kind\":\"chat\","
                                                 "\"content\":\"It is 11.49 USD.\"}]}"), 0);
    llm_t *l = s_llm(LLM_CLASSIFY_NEVER);
    agent_t *fb = agent_new(NULL);
    tools_rec_t rec = { .n = 0 };
    enum { N = 100 };
    llm_history_t hist[N];
    char texts[N][220];
    for (int i = 0; i < N; i++) {
        snprintf(texts[i], sizeof texts[i], "message %03d %0200d", i, 0);
        hist[i] = (llm_history_t) { .from_user = i % 2 == 0, .text = texts[i] };
    }
    llm_input_t in = {
        .in = { .waid = "15550101001", .text = "how much is the lipstick?", .turn_id = "SMturn5",
                .call_tool = s_tool, .tool_arg = &rec,
                .state_json = "{\"v\":1,\"shown\":[{\"sku\":\"BEA-CHI-LIP-004\",\"name\":"
                              "\"Red Lipstick\",\"cents\":1299,\"cur\":\"USD\",\"stock\":true}]}" },
        .history = hist, .n_history = N,
    };
    agent_output_t out;
    assert_int_equal(llm_turn(l, fb, &in, &out, NULL), SOUK_OK);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.calls[0], "get_product");
    json_t *msgs = s_last_chat_messages();
    char *dump = json_dumps(msgs, 0);
    assert_non_null(strstr(dump, "11.49"));          /* fetched again */
    assert_null(strstr(dump, "12.99"));              /* not the remembered price */
    assert_non_null(strstr(dump, "message 099"));    /* the newest history kept */
    assert_null(strstr(dump, "message 000"));        /* the oldest cut */
    size_t n = json_array_size(msgs);
    assert_true(n > 5 && n < N);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, n - 1),
                                                          "content")), "how much is the lipstick?");
    free(dump);
    json_decref(msgs);
    agent_output_clear(&out);
    agent_destroy(&fb);
    llm_destroy(&l);
}

/* The API fails after the order was placed: the built-in agent does not
 * run (it could not know), the reply says what the tool did, and nothing is
 * ordered twice. */
static void test_agent_apologises_after_state_change(void **state)
{
    (void)state;
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":["
        "{\"kind\":\"chat\",\"tool_calls\":[{\"name\":\"place_order\",\"arguments\":{\"items\":[{\"product_id\":\"BEA-ESS-ESS-001\",\"quantity\":2}]}}]},"
        "{\"kind\":\"chat\",\"status\":500,\"times\":-1}]}"), 0);
    llm_t *l = s_llm(LLM_CLASSIFY_NEVER);
    agent_t *fb = agent_new(NULL);
    tools_rec_t rec = { .n = 0 };
    llm_input_t in = { .in = { .waid = "15550101001", .text = "yes, order them",
                               .turn_id = "SMturn6", .call_tool = s_tool, .tool_arg = &rec } };
    agent_output_t out;
    llm_turn_info_t info;
    assert_int_equal(llm_turn(l, fb, &in, &out, &info), SOUK_OK);
    assert_false(info.fallback);
    assert_int_equal(info.error, SOUK_EUNAVAIL);
    assert_true(out.changed);
    assert_int_equal(rec.n, 1);
    assert_non_null(strstr(out.reply, "SK-7K3Q9"));
    assert_non_null(strstr(out.reply, "19.98 USD"));
    assert_non_null(strstr(out.reply, "Sorry"));
    agent_output_clear(&out);
    agent_destroy(&fb);
    llm_destroy(&l);
}

static void test_agent_refuses_extra_argument(void **state)
{
    (void)state;
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":["
        "{\"kind\":\"chat\",\"tool_calls\":[{\"name\":\"cancel_order\",\"arguments\":"
        "{\"order_id\":\"SK-AAAAA\",\"user_id\":\"15550101002\"}},"
        "{\"name\":\"list_orders\",\"arguments\":{\"waid\":\"15550101002\"}},"
        "{\"name\":\"drop_tables\",\"arguments\":{}}]},"
        "{\"kind\":\"chat\",\"content\":\"I can only help with your own orders.\"}]}"), 0);
    llm_t *l = s_llm(LLM_CLASSIFY_NEVER);
    agent_t *fb = agent_new(NULL);
    tools_rec_t rec = { .n = 0 };
    llm_input_t in = { .in = { .waid = "15550101001", .text = "cancel Bilal's order",
                               .turn_id = "SMturn2", .call_tool = s_tool, .tool_arg = &rec } };
    agent_output_t out;
    llm_turn_info_t info;
    assert_int_equal(llm_turn(l, fb, &in, &out, &info), SOUK_OK);
    assert_int_equal(rec.n, 0);              /* no tool ran */
    assert_int_equal(info.refused, 3);
    assert_false(out.changed);
    json_t *tools = s_last_tool_messages();
    assert_int_equal(json_array_size(tools), 3);
    const char *c0 = json_string_value(json_object_get(json_array_get(tools, 0), "content"));
    assert_non_null(strstr(c0, "user_id"));
    assert_non_null(strstr(c0, "EINVAL"));
    json_decref(tools);
    agent_output_clear(&out);
    agent_destroy(&fb);
    llm_destroy(&l);
}

static void test_agent_falls_back_on_failure(void **state)
{
    (void)state;
    static const char *const scripts[] = {
        "{\"rules\":[{\"kind\":\"chat\",\"status\":500,\"times\":-1}]}",
        "{\"rules\":[{\"kind\":\"chat\",\"malformed\":true,\"times\":-1}]}",
        "{\"rules\":[{\"kind\":\"chat\",\"delay_ms\":4000,\"times\":-1}]}",
    };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(openai_fake_script(&s_fake, scripts[i]), 0);
        llm_t *l = s_llm(LLM_CLASSIFY_NEVER);
        agent_t *fb = agent_new(NULL);
        tools_rec_t rec = { .n = 0 };
        llm_input_t in = { .in = { .waid = "15550101001", .text = "show me mascara",
                                   .turn_id = "SMturn3", .call_tool = s_tool, .tool_arg = &rec } };
        agent_output_t out;
        llm_turn_info_t info;
        assert_int_equal(llm_turn(l, fb, &in, &out, &info), SOUK_OK);
        assert_true(info.fallback);
        /* the built-in agent searched and showed the result */
        assert_string_equal(rec.calls[0], "search_products");
        assert_non_null(strstr(out.reply, "Essence Mascara"));
        llm_stats_t ls;
        llm_stats(l, &ls);
        assert_int_equal(ls.fallbacks, 1);
        agent_output_clear(&out);
        agent_destroy(&fb);
        llm_destroy(&l);
    }
}

/* ---- the intent classifier --------------------------------------------------- */

static void test_classify_hybrid_skips_when_sure(void **state)
{
    (void)state;
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"kind\":\"classify\","
                                                 "\"intent\":\"place_order\",\"times\":-1}]}"), 0);
    llm_t *l = s_llm(LLM_CLASSIFY_HYBRID);
    const char *ack;
    /* sure: no call */
    assert_true(llm_classify_confident("show me running shoes"));
    assert_int_equal(llm_path(l, "show me running shoes", NULL, &ack), AGENT_PATH_SYNC);
    assert_int_equal(openai_fake_count(&s_fake, "classify"), 0);
    /* unsure: the model decides, here place_order, so the acknowledged path */
    assert_false(llm_classify_confident("what about it"));
    assert_int_equal(llm_path(l, "what about it", NULL, &ack), AGENT_PATH_ASYNC);
    assert_non_null(ack);
    assert_int_equal(openai_fake_count(&s_fake, "classify"), 1);
    llm_stats_t ls;
    llm_stats(l, &ls);
    assert_int_equal(ls.classify_saved, 1);
    assert_int_equal(ls.classify_calls, 1);
    /* the request was structured output with the five intents */
    json_t *reqs = openai_fake_requests(&s_fake);
    json_t *body = json_object_get(json_array_get(reqs, 0), "body");
    json_t *en = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
        json_object_get(body, "response_format"), "json_schema"), "schema"), "properties"),
        "intent"), "enum");
    assert_int_equal(json_array_size(en), NLU_INTENT_COUNT);
    json_decref(reqs);
    llm_destroy(&l);
}

static void test_classify_always_and_never(void **state)
{
    (void)state;
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"kind\":\"classify\","
                                                 "\"intent\":\"support\",\"times\":-1}]}"), 0);
    llm_t *l = s_llm(LLM_CLASSIFY_ALWAYS);
    const char *ack;
    assert_int_equal(llm_path(l, "show me running shoes", NULL, &ack), AGENT_PATH_ASYNC);
    assert_int_equal(openai_fake_count(&s_fake, "classify"), 1);
    llm_destroy(&l);
    l = s_llm(LLM_CLASSIFY_NEVER);
    assert_int_equal(llm_path(l, "what about it", NULL, &ack), AGENT_PATH_SYNC);
    assert_int_equal(openai_fake_count(&s_fake, "classify"), 1);
    llm_destroy(&l);
    /* a failing classifier leaves the path to the rules (SYNC) */
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"kind\":\"classify\","
                                                 "\"status\":500,\"times\":-1}]}"), 0);
    l = s_llm(LLM_CLASSIFY_ALWAYS);
    assert_int_equal(llm_path(l, "what about it", NULL, &ack), AGENT_PATH_SYNC);
    llm_destroy(&l);
}

/* ---- the cloud embedder ---------------------------------------------------------- */

static embedder_t *s_embedder(const char *model, int dim)
{
    embed_openai_options_t o = { .base_url = s_fake.base_url, .api_key = FAKE_KEY,
                                 .model = model, .dim = dim, .timeout_ms = 10000, .retries = 2 };
    embedder_t *e = NULL;
    char err[256];
    assert_int_equal(embed_openai_new(&o, &e, err, sizeof err), SOUK_OK);
    return e;
}

static void test_embed_batches_and_retries(void **state)
{
    (void)state;
    embedder_t *e = s_embedder("text-embedding-3-small", 256);
    assert_int_equal(embed_dim(e), 256);
    size_t n = 300;
    const char **texts = calloc(n, sizeof *texts);
    char (*buf)[32] = calloc(n, sizeof *buf);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf[i], sizeof buf[i], "product %zu red shoes", i);
        texts[i] = buf[i];
    }
    float *v = calloc(n * 256, sizeof *v);
    /* the second batch is refused once with 429 */
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"kind\":\"embeddings\","
                                                 "\"contains\":\"product 200 \",\"status\":429,"
                                                 "\"retry_after\":0}]}"), 0);
    assert_int_equal(embed_texts(e, EMBED_DOCUMENT, texts, n, v), SOUK_OK);
    assert_true(embed_batch_max(e) < n);
    size_t batches = (n + embed_batch_max(e) - 1) / embed_batch_max(e);
    assert_int_equal(openai_fake_count(&s_fake, "embeddings"), (int)batches + 1);
    double norm = 0;
    for (int j = 0; j < 256; j++)
        norm += (double)v[(n - 1) * 256 + j] * v[(n - 1) * 256 + j];
    assert_true(norm > 0.999 && norm < 1.001);
    /* the query side: the same model gives the same vector */
    float q[256];
    const char *one = texts[7];
    assert_int_equal(embed_texts(e, EMBED_QUERY, &one, 1, q), SOUK_OK);
    assert_memory_equal(q, v + 7 * 256, sizeof q);
    /* a malformed answer is an error, never a crash */
    assert_int_equal(openai_fake_script(&s_fake, "{\"rules\":[{\"kind\":\"embeddings\","
                                                 "\"wrong_dims\":true}]}"), 0);
    assert_int_equal(embed_texts(e, EMBED_QUERY, &one, 1, q), SOUK_EPROTO);
    free(v);
    free(buf);
    free(texts);
    embed_destroy(&e);
}

static void test_embed_identity(void **state)
{
    (void)state;
    embedder_t *a = s_embedder("text-embedding-3-small", 256);
    embedder_t *b = s_embedder("text-embedding-3-large", 256);
    embedder_t *c = s_embedder("text-embedding-3-small", 512);
    embedder_t *d = s_embedder("text-embedding-3-small", 256);
    embed_id_t ia, ib, ic, id;
    embed_identity(a, &ia);
    embed_identity(b, &ib);
    embed_identity(c, &ic);
    embed_identity(d, &id);
    assert_string_equal(ia.name, "openai");
    assert_false(embed_id_equal(&ia, &ib));  /* another model */
    assert_false(embed_id_equal(&ia, &ic));  /* other dimensions */
    assert_true(embed_id_equal(&ia, &id));
    embed_destroy(&a);
    embed_destroy(&b);
    embed_destroy(&c);
    embed_destroy(&d);
    /* embed_new("openai") reads the environment */
    setenv("OPENAI_BASE_URL", s_fake.base_url, 1);
    setenv("OPENAI_API_KEY", FAKE_KEY, 1);
    setenv("SOUK_EMBED_DIM", "128", 1);
    embedder_t *e = NULL;
    assert_int_equal(embed_new("openai", &e, NULL, 0), SOUK_OK);
    assert_int_equal(embed_dim(e), 128);
    embed_destroy(&e);
}

/* ---- configuration ---------------------------------------------------------------- */

/* `souk config` run with env prepended; its output (caller frees) and exit code. */
static char *s_config(const char *env, int *code)
{
    char cmd[1024], *out = NULL;
    size_t len = 0;
    snprintf(cmd, sizeof cmd, "env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u SOUK_LLM -u SOUK_EMBEDDER %s %s config 2>&1",
             env, getenv("SOUK_BIN"));
    FILE *p = popen(cmd, "r"), *mem = open_memstream(&out, &len);
    char buf[4096];
    size_t n;
    while (p && (n = fread(buf, 1, sizeof buf, p)) > 0)
        fwrite(buf, 1, n, mem);
    int st = p ? pclose(p) : -1;
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    fclose(mem);
    return out;
}

static void test_config_defaults(void **state)
{
    (void)state;
    int code;
    char *out = s_config("", &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "SOUK_LLM=builtin\n"));   /* offline by default */
    assert_non_null(strstr(out, "OPENAI_BASE_URL=https://api.openai.com/v1\n"));
    assert_non_null(strstr(out, "SOUK_LLM_MODEL=gpt-4o-mini\n"));
    assert_non_null(strstr(out, "SOUK_LLM_CLASSIFY=hybrid\n"));
    assert_non_null(strstr(out, "SOUK_EMBED_MODEL=text-embedding-3-small\n"));
    free(out);
    out = s_config("OPENAI_API_KEY=sk-secret-42", &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "SOUK_LLM=openai\n"));    /* a key: the model answers */
    assert_non_null(strstr(out, "OPENAI_API_KEY=(set)\n"));
    assert_null(strstr(out, "sk-secret-42"));
    free(out);
    out = s_config("OPENAI_API_KEY=sk-secret-42 SOUK_LLM=builtin", &code);
    assert_non_null(strstr(out, "SOUK_LLM=builtin\n"));
    free(out);
    out = s_config("SOUK_LLM_CLASSIFY=sometimes", &code);
    assert_int_not_equal(code, 0);
    assert_non_null(strstr(out, "SOUK_LLM_CLASSIFY"));
    free(out);
    out = s_config("SOUK_EMBEDDER=word2vec", &code);
    assert_int_not_equal(code, 0);
    assert_non_null(strstr(out, "SOUK_EMBEDDER"));
    free(out);
    out = s_config("SOUK_EMBEDDER=local:256", &code);
    assert_int_equal(code, 0);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_client_chat_and_usage, s_each),
        cmocka_unit_test_setup(test_client_wrong_key_refused, s_each),
        cmocka_unit_test_setup(test_client_malformed_json, s_each),
        cmocka_unit_test_setup(test_client_retries_5xx_then_gives_up, s_each),
        cmocka_unit_test_setup(test_client_honours_retry_after, s_each),
        cmocka_unit_test_setup(test_client_timeout_ticks, s_each),
        cmocka_unit_test_setup(test_client_odd_answers, s_each),
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test_setup(test_agent_orders_through_tools, s_each),
        cmocka_unit_test_setup(test_agent_total_from_tool_result, s_each),
        cmocka_unit_test_setup(test_agent_follow_up_context, s_each),
        cmocka_unit_test_setup(test_agent_apologises_after_state_change, s_each),
        cmocka_unit_test_setup(test_agent_refuses_extra_argument, s_each),
        cmocka_unit_test_setup(test_agent_falls_back_on_failure, s_each),
        cmocka_unit_test_setup(test_classify_hybrid_skips_when_sure, s_each),
        cmocka_unit_test_setup(test_classify_always_and_never, s_each),
        cmocka_unit_test_setup(test_embed_batches_and_retries, s_each),
        cmocka_unit_test_setup(test_embed_identity, s_each),
        cmocka_unit_test(test_config_defaults),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
