/* The built-in agent, in process: a temporary store with the demo catalogue
 * (data/demo/products.jsonl) and its search index, the real tools
 * (tools_exec) as the tool callback, and scripted conversations for every
 * intent and path. Every reply of every test is checked on the way: at most
 * 1,600 bytes, every price in it from the catalogue, a tool result, the
 * customer's own words or a sum of prices before it, every *bold* name a
 * product of the catalogue or an id a tool gave, and a turn that changed
 * anything was one agent_path() called ASYNC. */
#include "assert_text.h"
#include "slurp.h"
#include "souk/agent.h"
#include "souk/error.h"
#include "souk/search.h"
#include "souk/store.h"
#include "souk/tools.h"

#include <ctype.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef SOUK_SRC_DIR
#define SOUK_SRC_DIR "."
#endif

#define WAID_A "14155550100"
#define WAID_B "14155550199"
#define MASCARA "BEA-ESS-ESS-001"   /* Essence Mascara Lash Princess, 9.99, stock 99 */
#define LIPSTICK "BEA-CHI-LIP-004"  /* Red Lipstick, 12.99 */
#define NOW_MS INT64_C(1795000000000)

/* ---- the fixture: store, catalogue, index, tools ---------------------------- */

typedef struct {
    char dir[64];
    store_t *store;
    search_t *search;
    tools_ctx_t tools;
    agent_t *agent;
    json_t *catalogue;          /* sku -> {name, cents} */
    char *tool_log;             /* every tool result of the test, for the price check */
    size_t tool_log_len;
    int calls, changing_calls;
    int fail_tool_rc;           /* != 0: the stub fails every call with it */
    bool lose_codes;            /* a failed call answers SOUK_OK with only its sentence */
} fx_t;

static char *s_dup_or_null(const json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* Loads the demo catalogue: known fields to columns, the rest to attrs. */
static void s_load_catalogue(fx_t *fx)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/demo/products.jsonl", SOUK_SRC_DIR);
    char *text = slurp(path, NULL);
    assert_non_null(text);
    store_product_t rows[256];
    size_t n = 0;
    fx->catalogue = json_object();
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        assert_true(n < 256);
        store_product_t *p = &rows[n++];
        memset(p, 0, sizeof *p);
        p->sku = s_dup_or_null(json_object_get(o, "sku"));
        p->name = s_dup_or_null(json_object_get(o, "name"));
        p->description = s_dup_or_null(json_object_get(o, "description"));
        p->price_cents = (int64_t) (json_number_value(json_object_get(o, "price")) * 100.0 + 0.5);
        p->currency = s_dup_or_null(json_object_get(o, "currency"));
        p->category = s_dup_or_null(json_object_get(o, "category"));
        p->image_url = s_dup_or_null(json_object_get(o, "image_url"));
        p->brand = s_dup_or_null(json_object_get(o, "brand"));
        p->stock = json_integer_value(json_object_get(o, "stock"));
        p->updated_ms = NOW_MS;
        json_t *tags = json_object_get(o, "tags");
        p->tags = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
        json_t *attrs = json_object();
        const char *k;
        json_t *v;
        static const char *const known[] = { "sku", "name", "description", "price", "currency",
                                             "category", "stock", "image_url", "brand", "tags",
                                             NULL };
        json_object_foreach(o, k, v) {
            bool is_known = false;
            for (int i = 0; known[i]; i++)
                is_known |= strcmp(k, known[i]) == 0;
            if (is_known)
                continue;
            if (json_is_string(v))
                json_object_set(attrs, k, v);
            else {
                char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                json_object_set_new(attrs, k, json_string(t));
                free(t);
            }
        }
        p->attrs = json_dumps(attrs, JSON_COMPACT);
        json_decref(attrs);
        json_object_set_new(fx->catalogue, p->sku,
                            json_pack("{s:s, s:I}", "name", p->name, "cents",
                                      (json_int_t) p->price_cents));
        json_decref(o);
    }
    free(text);
    assert_int_equal(n, 194);
    size_t bad = 0;
    assert_int_equal(store_product_upsert(fx->store, rows, n, &bad), SOUK_OK);
    for (size_t i = 0; i < n; i++)
        store_product_clear(&rows[i]);
}

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/souk-agent-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    char err[256];
    assert_int_equal(store_open("sqlite", fx->dir, NULL, &fx->store, err, sizeof err), SOUK_OK);
    s_load_catalogue(fx);
    assert_int_equal(search_build_index(fx->store, fx->dir, "local", NULL, err, sizeof err),
                     SOUK_OK);
    assert_int_equal(search_open(fx->dir, "local", &fx->search, err, sizeof err), SOUK_OK);
    fx->tools = (tools_ctx_t) { .store = fx->store, .search = fx->search };
    fx->agent = agent_new(&(agent_options_t) { .shop_name = "Souk Demo Shop" });
    assert_non_null(fx->agent);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    agent_destroy(&fx->agent);
    search_close(&fx->search);
    store_close(&fx->store);
    json_decref(fx->catalogue);
    free(fx->tool_log);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

/* ---- the tool callback -------------------------------------------------------- */

typedef struct {
    fx_t *fx;
    const char *waid;
} caller_t;

static void s_log_tool(fx_t *fx, const char *text)
{
    size_t n = strlen(text);
    fx->tool_log = realloc(fx->tool_log, fx->tool_log_len + n + 2);
    memcpy(fx->tool_log + fx->tool_log_len, text, n);
    fx->tool_log_len += n;
    fx->tool_log[fx->tool_log_len++] = '\n';
    fx->tool_log[fx->tool_log_len] = '\0';
}

static int s_call_tool(void *arg, const char *tool, const char *args_json, const char *idem_key,
                       char **result_json, char **error)
{
    caller_t *c = arg;
    c->fx->calls++;
    if (agent_tool_changes_state(tool)) {
        c->fx->changing_calls++;
        /* "<turn>:<step>" on every state change */
        assert_non_null(idem_key);
        assert_non_null(strchr(idem_key, ':'));
    } else
        assert_null(idem_key);
    if (c->fx->fail_tool_rc) {
        *result_json = NULL;
        *error = strdup("the tool actors are unreachable");
        return c->fx->fail_tool_rc;
    }
    int rc = tools_exec(&c->fx->tools, c->waid, tool, args_json, idem_key, result_json, error);
    if (rc == SOUK_OK)
        s_log_tool(c->fx, *result_json);
    if (rc != SOUK_OK && c->fx->lose_codes)
        return SOUK_OK;
    return rc;
}

/* ---- the checks on every reply ------------------------------------------------- */

/* Money amounts in text ("$1,299.50") as cents, in order; returns how many. */
static int s_prices(const char *text, int64_t *out, int cap)
{
    int n = 0;
    for (const char *p = strchr(text, '$'); p && n < cap; p = strchr(p + 1, '$')) {
        const char *q = p + 1;
        if (!isdigit((unsigned char) *q))
            continue;
        int64_t units = 0, cents = 0;
        while (isdigit((unsigned char) *q) || (*q == ',' && isdigit((unsigned char) q[1]))) {
            if (*q != ',')
                units = units * 10 + (*q - '0');
            q++;
        }
        if (*q == '.' && isdigit((unsigned char) q[1]) && isdigit((unsigned char) q[2]))
            cents = (q[1] - '0') * 10 + (q[2] - '0');
        out[n++] = units * 100 + cents;
    }
    return n;
}

/* Whether amount (cents) is written in text as a number in units: a tool
 * result ("total":19.98) or the customer's words ("under 50"). */
static bool s_number_in(const char *text, int64_t cents)
{
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char) *p) || (p > text && (isdigit((unsigned char) p[-1])
                                                          || p[-1] == '.')))
            continue;
        char *end;
        double v = strtod(p, &end);
        if ((int64_t) (v * 100.0 + 0.5) == cents)
            return true;
    }
    return false;
}

static bool s_catalogue_multiple(const fx_t *fx, int64_t cents)
{
    const char *k;
    json_t *v;
    json_object_foreach(fx->catalogue, k, v) {
        int64_t unit = json_integer_value(json_object_get(v, "cents"));
        for (int q = 1; unit > 0 && q <= 100; q++)
            if (unit * q == cents)
                return true;
    }
    return false;
}

static bool s_catalogue_name(const fx_t *fx, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach(fx->catalogue, k, v)
        if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
            return true;
    return false;
}

static void s_check_reply(fx_t *fx, const char *said, const char *reply)
{
    assert_non_null(reply);
    assert_true(strlen(reply) >= 1);
    assert_true(strlen(reply) <= AGENT_REPLY_MAX);
    int64_t prices[64];
    int n = s_prices(reply, prices, 64);
    for (int i = 0; i < n; i++) {
        int64_t sum = 0;
        for (int j = 0; j < i; j++)
            sum += prices[j];
        bool ok = s_catalogue_multiple(fx, prices[i]) || s_number_in(said, prices[i])
               || (fx->tool_log && s_number_in(fx->tool_log, prices[i])) || sum == prices[i];
        if (!ok)
            fail_msg("price %lld cents in the reply is from nowhere:\n%s",
                     (long long) prices[i], reply);
    }
    /* every *bold* span: a product of the catalogue, an id, or a total */
    for (const char *p = strchr(reply, '*'); p; ) {
        const char *e = strchr(p + 1, '*');
        if (!e)
            break;
        char span[256];
        size_t len = (size_t) (e - p - 1);
        if (len < sizeof span) {
            memcpy(span, p + 1, len);
            span[len] = '\0';
            bool ok = s_catalogue_name(fx, span) || strncmp(span, "SK-", 3) == 0
                   || strncmp(span, "TK-", 3) == 0 || span[0] == '$';
            if (!ok)
                fail_msg("bold span \"%s\" is not a product or an id:\n%s", span, reply);
        }
        p = strchr(e + 1, '*');
    }
}

/* ---- a conversation -------------------------------------------------------------- */

typedef struct {
    fx_t *fx;
    caller_t caller;
    const char *name;
    char *state;
    int turn_no;
    char turn_id[64];
    agent_output_t out;
    agent_path_t path;
    int64_t skew_ms;            /* added to the clock */
} conv_t;

static void conv_init(conv_t *c, fx_t *fx, const char *waid, const char *name)
{
    memset(c, 0, sizeof *c);
    c->fx = fx;
    c->caller = (caller_t) { fx, waid };
    c->name = name;
}

static void conv_clear(conv_t *c)
{
    agent_output_clear(&c->out);
    free(c->state);
    c->state = NULL;
}

/* Runs one turn with turn id `turn` from state `state`; returns the reply.
 * replay: the state was written by this same turn (a re-run after a crash),
 * which agent_path, knowing no turn, cannot tell. */
static const char *conv_replay(conv_t *c, const char *turn, const char *state, const char *text,
                               bool replay)
{
    agent_output_clear(&c->out);
    c->path = agent_path(text, state);
    agent_input_t in = {
        .waid = c->caller.waid, .profile_name = c->name, .text = text, .turn_id = turn,
        .state_json = state, .call_tool = s_call_tool, .tool_arg = &c->caller,
        .now_ms = NOW_MS + c->turn_no * 1000 + c->skew_ms,
    };
    assert_int_equal(agent_turn(c->fx->agent, &in, &c->out), SOUK_OK);
    if (getenv("SOUK_AGENT_VERBOSE"))
        fprintf(stderr, "> %s\n[%s %s%s]\n%s\n\n", text, c->out.action,
                c->path == AGENT_PATH_ASYNC ? "async" : "sync", c->out.changed ? " changed" : "",
                c->out.reply);
    s_check_reply(c->fx, text, c->out.reply);
    if (c->out.changed && !replay)
        assert_int_equal(c->path, AGENT_PATH_ASYNC);
    assert_non_null(c->out.state_json);
    json_t *st = json_loads(c->out.state_json, 0, NULL);
    assert_non_null(st);
    json_decref(st);
    return c->out.reply;
}

static const char *conv_run(conv_t *c, const char *turn, const char *state, const char *text)
{
    return conv_replay(c, turn, state, text, false);
}

static const char *say(conv_t *c, const char *text)
{
    snprintf(c->turn_id, sizeof c->turn_id, "SM%s%04d", c->caller.waid, ++c->turn_no);
    const char *reply = conv_run(c, c->turn_id, c->state, text);
    free(c->state);
    c->state = strdup(c->out.state_json);
    return reply;
}


/* ---- store helpers ----------------------------------------------------------------- */

static int64_t stock_of(fx_t *fx, const char *sku)
{
    store_product_t p = { 0 };
    assert_int_equal(store_product_get(fx->store, sku, &p), SOUK_OK);
    int64_t s = p.stock;
    store_product_clear(&p);
    return s;
}

static void set_stock(fx_t *fx, const char *sku, int64_t stock)
{
    store_product_t p = { 0 };
    assert_int_equal(store_product_get(fx->store, sku, &p), SOUK_OK);
    p.stock = stock;
    assert_int_equal(store_product_upsert(fx->store, &p, 1, NULL), SOUK_OK);
    store_product_clear(&p);
}

typedef struct {
    int n;
    store_order_t last;         /* the newest */
} orders_t;

static int s_on_order(const store_order_t *o, void *arg)
{
    orders_t *l = arg;
    if (l->n++ == 0) {
        l->last = *o;
        l->last.order_id = strdup(o->order_id);
        l->last.waid = strdup(o->waid);
        l->last.items = strdup(o->items);
        l->last.currency = strdup(o->currency);
        l->last.note = o->note ? strdup(o->note) : NULL;
        l->last.idem_key = strdup(o->idem_key);
    }
    return 0;
}

static orders_t orders_of(fx_t *fx, const char *waid)
{
    orders_t l = { 0 };
    assert_int_equal(store_order_list_user(fx->store, waid, s_on_order, &l), SOUK_OK);
    return l;
}

static int order_count(fx_t *fx, const char *waid)
{
    orders_t l = orders_of(fx, waid);
    store_order_clear(&l.last);
    return l.n;
}

static int s_count_ticket(const store_ticket_t *t, void *arg)
{
    (void) t;
    (*(int *) arg)++;
    return 0;
}

static int tickets_of(fx_t *fx, const char *waid)
{
    int n = 0;
    assert_int_equal(store_ticket_list_user(fx->store, waid, s_count_ticket, &n), SOUK_OK);
    return n;
}

/* The quantity of sku in an order's items JSON; 0 when absent. */
static int qty_in(const store_order_t *o, const char *sku)
{
    json_t *items = json_loads(o->items, 0, NULL);
    size_t i;
    json_t *it;
    int q = 0;
    json_array_foreach(items, i, it)
        if (strcmp(json_string_value(json_object_get(it, "sku")), sku) == 0)
            q = (int) json_integer_value(json_object_get(it, "qty"));
    json_decref(items);
    return q;
}

/* Places "n × the mascara" for the conversation's user; returns the id
 * (static buffer). */
static const char *place_mascaras(conv_t *c, int n)
{
    static char id[16];
    char text[64];
    snprintf(text, sizeof text, "I'll take %d Essence mascaras", n);
    assert_has(say(c, text), "Reply YES");
    assert_has(say(c, "yes"), "is placed");
    orders_t l = orders_of(c->fx, c->caller.waid);
    assert_true(l.n >= 1);
    snprintf(id, sizeof id, "%s", l.last.order_id);
    store_order_clear(&l.last);
    return id;
}

/* ---- the conversations ------------------------------------------------------------- */

/* search -> cheaper -> "the second one" -> quantity -> YES -> placed */
static void test_search_to_order(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, "Amina Khan");
    const char *r = say(&c, "hi, show me groceries");
    assert_int_equal(c.path, AGENT_PATH_SYNC);
    assert_has(r, "Amina");
    assert_has(r, "1. *");
    json_t *st = json_loads(c.state, 0, NULL);
    json_t *shown = json_object_get(st, "shown");
    assert_true(json_array_size(shown) >= 2);
    int64_t cheapest = INT64_MAX;
    size_t i;
    json_t *p;
    json_array_foreach(shown, i, p) {
        int64_t cents = json_integer_value(json_object_get(p, "cents"));
        cheapest = cents < cheapest ? cents : cheapest;
    }
    json_decref(st);

    r = say(&c, "show me cheaper ones");
    assert_int_equal(c.path, AGENT_PATH_SYNC);
    assert_string_equal(c.out.action, "refine");
    assert_has(r, "Cheaper options");
    int64_t prices[16];
    int n = s_prices(r, prices, 16);
    assert_true(n >= 2);
    for (int k = 0; k < n; k++)
        assert_true(prices[k] < cheapest);
    st = json_loads(c.state, 0, NULL);
    const char *second = json_string_value(json_object_get(
        json_array_get(json_object_get(st, "shown"), 1), "sku"));
    char sku[64];
    snprintf(sku, sizeof sku, "%s", second);
    json_decref(st);
    int64_t before = stock_of(fx, sku);

    r = say(&c, "the second one");
    assert_string_equal(c.out.action, "order");
    assert_int_equal(c.path, AGENT_PATH_SYNC);
    assert_has(r, "1 \u00d7 *");
    assert_has(r, "Reply YES to confirm or NO to cancel");
    r = say(&c, "2 please");
    assert_string_equal(c.out.action, "change");
    assert_has(r, "2 \u00d7 *");
    assert_int_equal(order_count(fx, WAID_A), 0);

    r = say(&c, "YES");
    assert_int_equal(c.path, AGENT_PATH_ASYNC);
    assert_true(c.out.changed);
    orders_t l = orders_of(fx, WAID_A);
    assert_int_equal(l.n, 1);
    assert_int_equal(qty_in(&l.last, sku), 2);
    assert_has(r, l.last.order_id);
    char total[32];
    snprintf(total, sizeof total, "$%lld.%02lld", (long long) (l.last.total_cents / 100),
             (long long) (l.last.total_cents % 100));
    assert_has(r, total);
    assert_int_equal(stock_of(fx, sku), before - 2);
    store_order_clear(&l.last);

    /* a second YES has nothing to confirm */
    r = say(&c, "yes");
    assert_int_equal(c.path, AGENT_PATH_SYNC);
    assert_false(c.out.changed);
    assert_has(r, "nothing waiting");
    assert_int_equal(order_count(fx, WAID_A), 1);
    conv_clear(&c);
}

/* "more like the first", "the cheaper one", "that one", "the mascara" */
static void test_references(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "show me perfume");
    json_t *st = json_loads(c.state, 0, NULL);
    json_t *shown = json_object_get(st, "shown");
    assert_true(json_array_size(shown) >= 3);
    char first[160], cheapest[160];
    snprintf(first, sizeof first, "%s",
             json_string_value(json_object_get(json_array_get(shown, 0), "name")));
    int64_t low = INT64_MAX;
    size_t i;
    json_t *p;
    json_array_foreach(shown, i, p)
        if (json_integer_value(json_object_get(p, "cents")) < low) {
            low = json_integer_value(json_object_get(p, "cents"));
            snprintf(cheapest, sizeof cheapest, "%s",
                     json_string_value(json_object_get(p, "name")));
        }
    json_decref(st);

    const char *r = say(&c, "the cheaper one");
    char want[200];
    snprintf(want, sizeof want, "1 \u00d7 *%s*", cheapest);
    assert_has(r, want);
    say(&c, "no");
    r = say(&c, "more like the first");
    assert_string_equal(c.out.action, "similar");
    snprintf(want, sizeof want, "More like *%s*", first);
    assert_has(r, want);
    snprintf(want, sizeof want, "1. *%s*", first);
    assert_lacks(r, want);
    /* details of #2, then "that one" is it */
    r = say(&c, "tell me more about #2");
    assert_string_equal(c.out.action, "detail");
    st = json_loads(c.state, 0, NULL);
    snprintf(want, sizeof want, "1 \u00d7 *%s*",
             json_string_value(json_object_get(json_object_get(st, "focus"), "name")));
    json_decref(st);
    r = say(&c, "I'll take that one");
    assert_has(r, want);
    /* out of range */
    r = say(&c, "#9");
    assert_has(r, "which one do you mean");
    /* a product named among the shown ones: semantic re-retrieval */
    say(&c, "show me makeup");
    r = say(&c, "I'll take the mascara");
    assert_has(r, "1 \u00d7 *Essence Mascara Lash Princess* = $9.99");
    conv_clear(&c);
}

static void test_no_places_nothing(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "show me mascara");
    const char *r = say(&c, "I'll take the first one");
    assert_has(r, "Essence Mascara Lash Princess");
    assert_has(r, "$9.99");
    r = say(&c, "no");
    assert_int_equal(c.path, AGENT_PATH_SYNC);
    assert_has(r, "haven't ordered anything");
    assert_int_equal(order_count(fx, WAID_A), 0);
    assert_int_equal(stock_of(fx, MASCARA), 99);
    /* and a YES after the NO places nothing either */
    say(&c, "yes");
    assert_int_equal(order_count(fx, WAID_A), 0);
    conv_clear(&c);
}

static void test_change_of_mind(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    const char *r = say(&c, "I'll take 2 Essence mascaras");
    assert_has(r, "2 \u00d7 *Essence Mascara Lash Princess* = $19.98");
    r = say(&c, "actually make it three");
    assert_string_equal(c.out.action, "change");
    assert_has(r, "3 \u00d7 *Essence Mascara Lash Princess* = $29.97");
    assert_lacks(r, "$19.98");
    say(&c, "yes");
    orders_t l = orders_of(fx, WAID_A);
    assert_int_equal(l.n, 1);
    assert_int_equal(qty_in(&l.last, MASCARA), 3);
    assert_int_equal(l.last.total_cents, 2997);
    assert_int_equal(stock_of(fx, MASCARA), 96);
    store_order_clear(&l.last);
    conv_clear(&c);
}

static void test_two_items(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "show me makeup");
    const char *r = say(&c, "2 mascaras and 1 lipstick");
    assert_has(r, "2 \u00d7 *Essence Mascara Lash Princess* \u2014 $19.98");
    assert_has(r, "1 \u00d7 *Red Lipstick* \u2014 $12.99");
    assert_has(r, "Total: *$32.97*");
    r = say(&c, "yes");
    assert_true(c.out.changed);
    orders_t l = orders_of(fx, WAID_A);
    assert_int_equal(l.n, 1);
    assert_int_equal(qty_in(&l.last, MASCARA), 2);
    assert_int_equal(qty_in(&l.last, LIPSTICK), 1);
    assert_int_equal(l.last.total_cents, 3297);
    assert_has(r, "$32.97");
    store_order_clear(&l.last);

    /* adding to a pending order */
    say(&c, "I'll take a lipstick");
    r = say(&c, "also add 2 mascaras");
    assert_has(r, "Total: *$32.97*");
    conv_clear(&c);
}

static void test_out_of_stock(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "show me lipstick");
    const char *r = say(&c, "the first one");
    assert_has(r, "*Red Lipstick*");
    /* the last one goes to someone else before the YES */
    set_stock(fx, LIPSTICK, 0);
    r = say(&c, "yes");
    assert_false(c.out.changed);
    assert_has(r, "Nothing was ordered");
    assert_has(r, "out of stock");
    assert_int_equal(order_count(fx, WAID_A), 0);
    /* alternatives offered are in stock and not the lipstick */
    assert_lacks(r, "1. *Red Lipstick*");
    /* asked for when already out: no confirmation at all */
    r = say(&c, "I want the red lipstick");
    assert_has(r, "out of stock");
    assert_lacks(r, "Reply YES");
    say(&c, "yes");
    assert_int_equal(order_count(fx, WAID_A), 0);

    /* fewer left than asked: said, and the smaller number orders */
    set_stock(fx, LIPSTICK, 2);
    r = say(&c, "5 red lipsticks");
    assert_has(r, "only have 2");
    r = say(&c, "2");
    assert_has(r, "2 \u00d7 *Red Lipstick* = $25.98");
    say(&c, "yes");
    assert_int_equal(order_count(fx, WAID_A), 1);
    assert_int_equal(stock_of(fx, LIPSTICK), 0);
    conv_clear(&c);
}

static void test_unknown_product(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    const char *r = say(&c, "do you sell spaceships?");
    assert_int_equal(c.path, AGENT_PATH_SYNC);
    assert_has(r, "spaceships");
    assert_lacks(r, "$");
    assert_lacks(r, "*");
    r = say(&c, "I'll take 2 spaceships");
    assert_lacks(r, "$");
    assert_lacks(r, "Reply YES");
    assert_int_equal(order_count(fx, WAID_A), 0);
    conv_clear(&c);
}

static void test_order_status(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    const char *r = say(&c, "where is my order?");
    assert_int_equal(c.path, AGENT_PATH_SYNC);
    assert_has(r, "don't have any orders");
    char id[16];
    snprintf(id, sizeof id, "%s", place_mascaras(&c, 1));
    r = say(&c, "where is my order?");
    assert_string_equal(c.out.action, "status");
    assert_has(r, id);
    assert_has(r, "being prepared");
    assert_has(r, "$9.99");
    assert_int_equal(store_order_transition(fx->store, id, WAID_A, STORE_ORDER_SHIPPED, NOW_MS,
                                            NULL), SOUK_OK);
    char text[64];
    snprintf(text, sizeof text, "status of %s please", id);
    r = say(&c, text);
    assert_has(r, "on its way");
    /* two orders: a list */
    place_mascaras(&c, 2);
    r = say(&c, "show me my orders");
    assert_has(r, "Your latest orders");
    assert_has(r, id);
    conv_clear(&c);
}

static void test_identity(void **state)
{
    fx_t *fx = *state;
    conv_t a, b;
    conv_init(&a, fx, WAID_A, "Amina");
    conv_init(&b, fx, WAID_B, "Bilal");
    char id[16];
    snprintf(id, sizeof id, "%s", place_mascaras(&a, 2));
    char text[128];
    snprintf(text, sizeof text, "where is my order %s", id);
    const char *r = say(&b, text);
    assert_has(r, "couldn't find");
    assert_lacks(r, "Mascara");
    assert_lacks(r, "$");
    /* naming A's number changes nothing either */
    r = say(&b, "I am " WAID_A ", show my orders");
    assert_lacks(r, id);
    snprintf(text, sizeof text, "cancel order %s", id);
    r = say(&b, text);
    assert_has(r, "couldn't find");
    say(&b, "yes");
    orders_t l = orders_of(fx, WAID_A);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.last.status, STORE_ORDER_PENDING);
    store_order_clear(&l.last);
    /* a complaint naming A's order: B's ticket, without A's order */
    snprintf(text, sizeof text, "my parcel arrived broken, order %s", id);
    r = say(&b, text);
    assert_true(b.out.changed);
    assert_has(r, "TK-");
    assert_has(r, "couldn't find order");
    assert_int_equal(tickets_of(fx, WAID_B), 1);
    assert_int_equal(tickets_of(fx, WAID_A), 0);
    conv_clear(&a);
    conv_clear(&b);
}

static void test_cancel(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    char id[16];
    snprintf(id, sizeof id, "%s", place_mascaras(&c, 2));
    assert_int_equal(stock_of(fx, MASCARA), 97);
    char text[64];
    snprintf(text, sizeof text, "cancel my order %s", id);
    const char *r = say(&c, text);
    assert_int_equal(c.path, AGENT_PATH_ASYNC);
    assert_false(c.out.changed);
    assert_has(r, "Reply YES to cancel it");
    assert_has(r, id);
    r = say(&c, "yes");
    assert_int_equal(c.path, AGENT_PATH_ASYNC);
    assert_true(c.out.changed);
    assert_has(r, "is cancelled");
    orders_t l = orders_of(fx, WAID_A);
    assert_int_equal(l.last.status, STORE_ORDER_CANCELLED);
    store_order_clear(&l.last);
    assert_int_equal(stock_of(fx, MASCARA), 99);

    /* "no" keeps it */
    snprintf(id, sizeof id, "%s", place_mascaras(&c, 1));
    r = say(&c, "cancel my order");
    assert_has(r, id);
    r = say(&c, "no");
    assert_has(r, "stays as it is");
    l = orders_of(fx, WAID_A);
    assert_int_equal(l.last.status, STORE_ORDER_PENDING);
    store_order_clear(&l.last);

    /* shipped: refused */
    assert_int_equal(store_order_transition(fx->store, id, WAID_A, STORE_ORDER_SHIPPED, NOW_MS,
                                            NULL), SOUK_OK);
    snprintf(text, sizeof text, "cancel order %s", id);
    r = say(&c, text);
    assert_has(r, "already shipped");
    assert_lacks(r, "Reply YES");

    /* shipped between the question and the YES: refused too */
    snprintf(id, sizeof id, "%s", place_mascaras(&c, 1));
    snprintf(text, sizeof text, "cancel %s", id);
    assert_has(say(&c, text), "Reply YES to cancel it");
    assert_int_equal(store_order_transition(fx->store, id, WAID_A, STORE_ORDER_SHIPPED, NOW_MS,
                                            NULL), SOUK_OK);
    r = say(&c, "yes");
    assert_false(c.out.changed);
    assert_has(r, "already shipped");
    l = orders_of(fx, WAID_A);
    assert_int_equal(l.last.status, STORE_ORDER_SHIPPED);
    store_order_clear(&l.last);
    conv_clear(&c);
}

static void test_complaint_ticket(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    char id[16], text[128];
    snprintf(id, sizeof id, "%s", place_mascaras(&c, 1));
    snprintf(text, sizeof text, "my parcel arrived broken, order %s", id);
    assert_int_equal(agent_path(text, c.state), AGENT_PATH_ASYNC);
    assert_non_null(agent_ack(text, c.state));
    const char *r = say(&c, text);
    assert_true(c.out.changed);
    assert_string_equal(c.out.action, "ticket");
    assert_has(r, "TK-");
    assert_has(r, id);
    assert_has(r, "a person from Souk Demo Shop will get back to you");
    store_ticket_t t = { 0 };
    char tk[16];
    const char *at = strstr(r, "TK-");
    snprintf(tk, sizeof tk, "%.8s", at);
    assert_int_equal(store_ticket_get(fx->store, tk, WAID_A, &t), SOUK_OK);
    assert_string_equal(t.order_id, id);
    assert_has(t.subject, "Damaged");
    store_ticket_clear(&t);

    /* a person on request */
    r = say(&c, "I want to talk to a human");
    assert_int_equal(c.path, AGENT_PATH_ASYNC);
    assert_string_equal(c.out.action, "handoff");
    assert_has(r, "TK-");
    assert_int_equal(tickets_of(fx, WAID_A), 2);
    conv_clear(&c);
}

static void test_policy_questions(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "show me mascara");
    const char *r = say(&c, "what's the warranty on the first one?");
    assert_int_equal(c.path, AGENT_PATH_SYNC);
    assert_string_equal(c.out.action, "policy");
    assert_has(r, "*Essence Mascara Lash Princess*");
    assert_has(r, "1 week warranty");
    r = say(&c, "how long does shipping take?");
    assert_has(r, "Ships in 3-5 business days");
    r = say(&c, "can I return the red lipstick?");
    assert_has(r, "*Red Lipstick*");
    assert_has(r, "return policy");
    /* with nothing in focus: which product? */
    conv_t d;
    conv_init(&d, fx, WAID_B, NULL);
    r = say(&d, "how long does delivery take?");
    assert_has(r, "Which product");
    conv_clear(&d);
    /* details, then an order of "it" */
    r = say(&c, "tell me more about the mascara");
    assert_string_equal(c.out.action, "detail");
    assert_has(r, "*Essence Mascara Lash Princess*");
    assert_has(r, "in stock");
    r = say(&c, "yes");
    assert_has(r, "1 \u00d7 *Essence Mascara Lash Princess* = $9.99");
    conv_clear(&c);
}

static void test_small_talk(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, "Amina Khan");
    const char *r = say(&c, "hello");
    assert_string_equal(c.out.action, "greet");
    assert_has(r, "Hi Amina!");
    assert_has(r, "Souk Demo Shop");
    r = say(&c, "thanks!");
    assert_has(r, "You're welcome, Amina");
    r = say(&c, "help");
    assert_has(r, "Find products");
    /* a profile name with formatting marks and no letters */
    conv_t d;
    conv_init(&d, fx, WAID_B, "*_~");
    r = say(&d, "hi");
    assert_has(r, "Hi! ");
    conv_clear(&d);
    conv_clear(&c);
}

static void test_gibberish(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    const char *r = say(&c, "asdf qwer zxcv");
    assert_int_equal(c.path, AGENT_PATH_SYNC);
    assert_string_equal(c.out.action, "clarify");
    assert_has(r, "find a product, check an order, or talk to support");
    r = say(&c, "blorp");
    assert_has(r, "Here's what I can do");
    assert_int_equal(fx->changing_calls, 0);
    conv_clear(&c);
}

/* Debounced messages joined, quantities in words, a confirmation that
 * waited too long. */
static void test_turn_shapes(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, "Amina");
    const char *r = say(&c, "hi\ndo you have sunglasses?");
    assert_has(r, "Hi Amina!");
    assert_string_equal(c.out.action, "search");
    r = say(&c, "2 mascaras\nand 1 lipstick");
    assert_has(r, "Total: *$32.97*");
    r = say(&c, "I'll take a couple of Essence mascaras");
    assert_has(r, "2 \u00d7 *Essence Mascara Lash Princess* = $19.98");
    r = say(&c, "2x red lipstick");
    assert_has(r, "2 \u00d7 *Red Lipstick* = $25.98");
    /* an aside keeps the confirmation, with a reminder */
    r = say(&c, "what's the warranty on it?");
    assert_has(r, "Warranty");
    assert_has(r, "Please confirm your order");
    /* an hour later, a YES confirms nothing */
    c.skew_ms = AGENT_PENDING_TTL_MS + 1;
    r = say(&c, "yes");
    assert_has(r, "nothing waiting");
    assert_int_equal(order_count(fx, WAID_A), 0);
    /* a long list stays short */
    r = say(&c, "show me kitchen stuff");
    int items = 0;
    for (const char *p = r; (p = strstr(p, ". *")); p++)
        items++;
    assert_true(items <= AGENT_LIST_MAX);
    conv_clear(&c);
}

/* A crash after the order was placed: the same turn again, before or after
 * its state was saved, and a YES in a later turn from the old state. */
static void test_rerun_turn(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "I'll take 2 Essence mascaras");
    char *before = strdup(c.state);
    say(&c, "yes");
    char turn[64], first_reply[AGENT_REPLY_MAX + 1];
    snprintf(turn, sizeof turn, "%s", c.turn_id);
    snprintf(first_reply, sizeof first_reply, "%s", c.out.reply);
    char *after = strdup(c.state);
    orders_t l = orders_of(fx, WAID_A);
    assert_int_equal(l.n, 1);
    char id[16];
    snprintf(id, sizeof id, "%s", l.last.order_id);
    store_order_clear(&l.last);

    /* the state was not saved: the same turn from the same state */
    const char *r = conv_run(&c, turn, before, "yes");
    assert_has(r, id);
    assert_string_equal(r, first_reply);
    /* the state was saved: the same turn from its own state */
    r = conv_replay(&c, turn, after, "yes", true);
    assert_string_equal(r, first_reply);
    /* the reply was lost and the user says YES again, from the old state */
    r = conv_run(&c, "SMretry0001", before, "yes");
    assert_has(r, id);
    assert_int_equal(order_count(fx, WAID_A), 1);
    assert_int_equal(stock_of(fx, MASCARA), 97);

    /* a ticket turn run twice opens one ticket */
    conv_t d;
    conv_init(&d, fx, WAID_B, NULL);
    char *s0 = NULL;
    r = conv_run(&d, "SMticket0001", s0, "the box was crushed");
    char tk[16];
    snprintf(tk, sizeof tk, "%.8s", strstr(r, "TK-"));
    r = conv_run(&d, "SMticket0001", s0, "the box was crushed");
    assert_has(r, tk);
    assert_int_equal(tickets_of(fx, WAID_B), 1);
    conv_clear(&d);
    free(before);
    free(after);
    conv_clear(&c);
}

/* The path is decided before the turn, from the text and the state. */
static void test_agent_path(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(agent_path("show me running shoes", NULL), AGENT_PATH_SYNC);
    assert_int_equal(agent_path("where is my order SK-7K3Q9", NULL), AGENT_PATH_SYNC);
    assert_int_equal(agent_path("hello", NULL), AGENT_PATH_SYNC);
    assert_int_equal(agent_path("how long does shipping take?", NULL), AGENT_PATH_SYNC);
    assert_int_equal(agent_path("YES", NULL), AGENT_PATH_SYNC);
    assert_int_equal(agent_path("cancel order SK-7K3Q9", NULL), AGENT_PATH_ASYNC);
    assert_int_equal(agent_path("my parcel arrived broken, order SK-7K3Q9", NULL),
                     AGENT_PATH_ASYNC);
    assert_int_equal(agent_path("talk to a human", NULL), AGENT_PATH_ASYNC);
    assert_int_equal(agent_path(NULL, NULL), AGENT_PATH_SYNC);
    assert_int_equal(agent_path("yes", "{not json"), AGENT_PATH_SYNC);
    assert_null(agent_ack("show me shoes", NULL));
    assert_has(agent_ack("cancel order SK-7K3Q9", NULL), "looking up");

    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "I'll take 2 Essence mascaras");
    assert_int_equal(agent_path("YES", c.state), AGENT_PATH_ASYNC);
    assert_has(agent_ack("YES", c.state), "placing your order");
    assert_int_equal(agent_path("no", c.state), AGENT_PATH_SYNC);
    assert_int_equal(agent_path("actually make it three", c.state), AGENT_PATH_SYNC);
    assert_int_equal(agent_path("show me lipstick", c.state), AGENT_PATH_SYNC);
    say(&c, "yes");
    assert_int_equal(agent_path("YES", c.state), AGENT_PATH_SYNC);
    orders_t l = orders_of(fx, WAID_A);
    char text[64];
    snprintf(text, sizeof text, "cancel %s", l.last.order_id);
    store_order_clear(&l.last);
    say(&c, text);
    assert_int_equal(agent_path("yes", c.state), AGENT_PATH_ASYNC);
    assert_has(agent_ack("yes", c.state), "cancelling");
    conv_clear(&c);
}

/* The state lives in the store and survives a restart of everything. */
static void test_state_persistence(void **state)
{
    fx_t *fx = *state;
    char *json = NULL;
    assert_int_equal(store_user_state_get(fx->store, WAID_A, &json), SOUK_ENOTFOUND);
    assert_int_equal(store_user_state_put(fx->store, "not-a-waid", "{}", NOW_MS), SOUK_EINVAL);
    assert_int_equal(store_user_state_put(fx->store, WAID_A, "", NOW_MS), SOUK_EINVAL);

    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "I'll take 2 Essence mascaras");
    assert_int_equal(store_user_state_put(fx->store, WAID_A, c.state, NOW_MS), SOUK_OK);
    free(c.state);
    c.state = NULL;

    /* restart: new store handle, new agent */
    store_close(&fx->store);
    agent_destroy(&fx->agent);
    char err[256];
    assert_int_equal(store_open("sqlite", fx->dir, NULL, &fx->store, err, sizeof err), SOUK_OK);
    fx->tools.store = fx->store;
    fx->agent = agent_new(NULL);
    assert_int_equal(store_user_state_get(fx->store, WAID_A, &json), SOUK_OK);
    c.state = json;
    const char *r = say(&c, "yes");
    assert_has(r, "is placed");
    assert_int_equal(order_count(fx, WAID_A), 1);
    assert_int_equal(store_user_state_put(fx->store, WAID_A, c.state, NOW_MS + 1), SOUK_OK);
    assert_int_equal(store_user_state_get(fx->store, WAID_A, &json), SOUK_OK);
    assert_string_equal(json, c.state);
    free(json);
    /* a state that cannot be read starts afresh */
    free(c.state);
    c.state = strdup("{\"v\":1,\"pending\":{\"kind\":\"order\",\"key\":\"x\"}}");
    r = say(&c, "yes");
    assert_has(r, "nothing waiting");
    conv_clear(&c);
}

/* Tools that fail: a clear apology, and the confirmation still stands. */
static void test_tools_down(void **state)
{
    fx_t *fx = *state;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "I'll take 2 Essence mascaras");
    fx->fail_tool_rc = SOUK_ETIMEDOUT;
    const char *r = say(&c, "yes");
    assert_false(c.out.changed);
    assert_has(r, "Reply YES again");
    r = say(&c, "show me shoes");
    assert_has(r, "try again");
    fx->fail_tool_rc = 0;
    say(&c, "I'll take 2 Essence mascaras");
    fx->fail_tool_rc = SOUK_EIO;
    say(&c, "yes");
    fx->fail_tool_rc = 0;
    r = say(&c, "yes");
    assert_has(r, "is placed");
    assert_int_equal(order_count(fx, WAID_A), 1);
    conv_clear(&c);
}

/* A tool pool that loses the error's code (answers OK with only the
 * sentence): the agent still finds out why, with read-only tools. */
static void test_lost_error_codes(void **state)
{
    fx_t *fx = *state;
    fx->lose_codes = true;
    conv_t c;
    conv_init(&c, fx, WAID_A, NULL);
    say(&c, "I'll take 2 Essence mascaras");
    set_stock(fx, MASCARA, 1);
    const char *r = say(&c, "yes");
    assert_has(r, "only have 1");
    assert_int_equal(order_count(fx, WAID_A), 0);
    set_stock(fx, MASCARA, 99);
    char id[16];
    snprintf(id, sizeof id, "%s", place_mascaras(&c, 1));
    char text[64];
    snprintf(text, sizeof text, "cancel %s", id);
    say(&c, text);
    assert_int_equal(store_order_transition(fx->store, id, WAID_A, STORE_ORDER_DELIVERED, NOW_MS,
                                            NULL), SOUK_OK);
    r = say(&c, "yes");
    assert_has(r, "already been delivered");
    conv_t b;
    conv_init(&b, fx, WAID_B, NULL);
    snprintf(text, sizeof text, "the item in %s is broken", id);
    r = say(&b, text);
    assert_has(r, "couldn't find order");
    assert_has(r, "TK-");
    assert_int_equal(tickets_of(fx, WAID_B), 1);
    conv_clear(&b);
    conv_clear(&c);
}

/* Bad input, long input, odd bytes: answered, bounded, never a crash. */
static void test_bounds(void **state)
{
    fx_t *fx = *state;
    agent_output_t out = { 0 };
    caller_t caller = { fx, WAID_A };
    agent_input_t in = { .waid = WAID_A, .text = "hi", .turn_id = "SM1",
                         .call_tool = s_call_tool, .tool_arg = &caller };
    assert_int_equal(agent_turn(NULL, &in, &out), SOUK_EINVAL);
    in.waid = NULL;
    assert_int_equal(agent_turn(fx->agent, &in, &out), SOUK_EINVAL);
    in.waid = WAID_A;
    in.call_tool = NULL;
    assert_int_equal(agent_turn(fx->agent, &in, &out), SOUK_EINVAL);

    conv_t c;
    conv_init(&c, fx, WAID_A, "A\xF0\x9F\x98\x80\xF0\x9F\x98\x80");
    char big[5000];
    memset(big, 0, sizeof big);
    for (size_t i = 0; i + 12 < sizeof big; i += 11)
        memcpy(big + i, "red shoes, ", 11);
    say(&c, big);
    say(&c, "\xff\xfe\x01 yes \xe2\x80");
    say(&c, "");
    const char *r = say(&c, "show me phones");
    int lines = 0;
    for (const char *p = r; (p = strstr(p, "\n")); p++)
        lines++;
    assert_true(lines <= AGENT_LIST_MAX + 4);
    conv_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_search_to_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_references, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_no_places_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_change_of_mind, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_two_items, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_out_of_stock, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_product, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_order_status, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_identity, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_complaint_ticket, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_policy_questions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_small_talk, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_gibberish, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_turn_shapes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rerun_turn, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_agent_path, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_state_persistence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tools_down, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_lost_error_codes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bounds, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
