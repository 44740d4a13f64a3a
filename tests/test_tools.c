/* The tools in-process: the table and its OpenAI form, every validation
 * error, identity, idempotency and crash recovery, stock, the race for the
 * last item between two processes, cancellation, tickets, merchant
 * notifications, and a little fuzzing of the validator and the dispatcher.
 *
 * Each test gets a fresh data folder with a small catalogue in the store
 * and a search index built from it (search_build_index), and calls
 * tools_exec directly. Crashes are simulated in forked children: the hint
 * callback, which runs after the state change and before the result is
 * recorded, ends the child with _exit. */
#include "souk/error.h"
#include "souk/log.h"
#include "souk/search.h"
#include "souk/store.h"
#include "souk/tools.h"

#include <ftw.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef SOUK_SRC_DIR
#define SOUK_SRC_DIR "."
#endif

#define ANA "15551230001"
#define BEN "15551230002"
#define MERCHANT "+1 555 000 1111"
#define MERCHANT_ADDR "whatsapp:+15550001111"
#define WEBHOOK "http://127.0.0.1:9/hooks/souk"
#define T0 1700000000000LL

typedef struct {
    char dir[128];
    store_t *store;
    search_t *search;
    tools_ctx_t ctx;
    char hints[16][160];
    int nhints;
    int exit_at_hint;   /* in a forked child: _exit at this hint (1-based); 0 never */
} fx_t;

/* ---- the catalogue ---------------------------------------------------------------- */

#define P(sku_, name_, cat_, brand_, desc_, cents_, cur_, stock_, attrs_)                   \
    { .sku = sku_, .name = name_, .category = cat_, .brand = brand_, .description = desc_, \
      .price_cents = cents_, .currency = cur_, .stock = stock_, .attrs = attrs_, .updated_ms = T0 }

static store_product_t s_catalogue[] = {
    P("BEA-MASC", "Essence Mascara Lash Princess", "beauty", "Essence",
      "A volumizing mascara for long, dramatic lashes.", 999, "USD", 10,
      "{\"warranty\":\"No warranty\",\"return_policy\":\"30 days, unopened\","
      "\"shipping\":\"Ships in 2 days\"}"),
    P("BEA-LIP", "Red Lipstick", "beauty", "Chic Cosmetics",
      "A classic bold red with a creamy matte finish.", 1299, "USD", 0, NULL),
    P("SHO-RUN", "Trail Running Sneakers", "shoes", "Nike",
      "Comfortable running shoes with air cushioning and a breathable mesh upper.", 5999, "USD",
      5, "{\"size\":\"42\"}"),
    P("PHO-13", "Apple iPhone 13 Pro", "smartphones", "Apple",
      "Flagship phone with a triple camera system and a ProMotion display.", 99900, "USD", 2,
      NULL),
    P("WAT-LAST", "Limited Edition Watch", "accessories", "Rolex",
      "A numbered wristwatch, only one left.", 25000, "USD", 1, NULL),
    P("MUG-EUR", "Ceramic Coffee Mug", "kitchen", NULL, "Holds 350 ml of coffee.", 899, "EUR", 30,
      NULL),
};
#define NCAT (sizeof s_catalogue / sizeof s_catalogue[0])

/* ---- fixture ------------------------------------------------------------------------ */

static void s_hint(const char *key, void *arg)
{
    fx_t *fx = arg;
    if (fx->nhints < 16)
        snprintf(fx->hints[fx->nhints], sizeof fx->hints[0], "%s", key);
    fx->nhints++;
    if (fx->exit_at_hint && fx->nhints == fx->exit_at_hint)
        _exit(42); /* the crash: no result recorded, nothing cleaned up */
}

static void s_open(fx_t *fx, bool with_search)
{
    char err[256];
    assert_int_equal(store_open("sqlite", fx->dir, NULL, &fx->store, err, sizeof err), SOUK_OK);
    if (with_search)
        assert_int_equal(search_open(fx->dir, NULL, &fx->search, err, sizeof err), SOUK_OK);
    fx->ctx = (tools_ctx_t){ .store = fx->store, .search = fx->search,
                             .merchant_whatsapp = MERCHANT, .merchant_webhook = WEBHOOK,
                             .hint = s_hint, .hint_arg = fx };
}

static void s_close(fx_t *fx)
{
    search_close(&fx->search);
    store_close(&fx->store);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/sk-tools-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    char err[256];
    assert_int_equal(store_open("sqlite", fx->dir, NULL, &fx->store, err, sizeof err), SOUK_OK);
    assert_int_equal(store_product_upsert(fx->store, s_catalogue, NCAT, NULL), SOUK_OK);
    int rc = search_build_index(fx->store, fx->dir, NULL, NULL, err, sizeof err);
    if (rc != SOUK_OK)
        fail_msg("search_build_index: %s: %s", souk_errname(rc), err);
    store_close(&fx->store);
    s_open(fx, true);
    *state = fx;
    return 0;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    s_close(fx);
    nftw(fx->dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* ---- calling ---------------------------------------------------------------------- */

typedef struct {
    int rc;
    char *text;      /* result JSON text or the error sentence */
    json_t *json;    /* the result parsed; NULL on error */
} call_t;

static void s_call_clear(call_t *c)
{
    free(c->text);
    json_decref(c->json);
    memset(c, 0, sizeof *c);
}

static call_t s_call(fx_t *fx, const char *waid, const char *tool, const char *args, const char *key)
{
    call_t c = { 0 };
    char *result = NULL, *error = NULL;
    c.rc = tools_exec(&fx->ctx, waid, tool, args, key, &result, &error);
    if (c.rc == SOUK_OK) {
        assert_non_null(result);
        assert_null(error);
        assert_true(strlen(result) <= TOOLS_RESULT_MAX);
        json_error_t e;
        c.json = json_loads(result, JSON_DECODE_ANY, &e);
        if (!c.json)
            fail_msg("result of %s is not JSON: %s (%s)", tool, e.text, result);
        c.text = result;
    } else {
        assert_null(result);
        assert_non_null(error);
        assert_true(strlen(error) > 10);
        c.text = error;
    }
    return c;
}

/* A call that must succeed; returns its parsed result (caller decrefs). */
static json_t *s_ok(fx_t *fx, const char *waid, const char *tool, const char *args, const char *key)
{
    call_t c = s_call(fx, waid, tool, args, key);
    if (c.rc != SOUK_OK)
        fail_msg("%s(%s): %s: %s", tool, args, souk_errname(c.rc), c.text);
    json_t *j = json_incref(c.json);
    s_call_clear(&c);
    return j;
}

/* A call that must fail with rc and an error containing `want`. */
static void s_err(fx_t *fx, const char *waid, const char *tool, const char *args, const char *key,
                  int rc, const char *want)
{
    call_t c = s_call(fx, waid, tool, args, key);
    if (c.rc != rc || !strstr(c.text, want))
        fail_msg("%s(%s): want %s with \"%s\", got %s: %s", tool, args ? args : "", souk_errname(rc),
                 want, souk_errname(c.rc), c.text);
    s_call_clear(&c);
}

static const char *s_get(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int64_t s_stock(fx_t *fx, const char *sku)
{
    store_product_t p = { 0 };
    assert_int_equal(store_product_get(fx->store, sku, &p), SOUK_OK);
    int64_t n = p.stock;
    store_product_clear(&p);
    return n;
}

static int s_count_order(const store_order_t *row, void *arg)
{
    (void)row;
    (*(int *)arg)++;
    return 0;
}

static int s_count_ticket(const store_ticket_t *row, void *arg)
{
    (void)row;
    (*(int *)arg)++;
    return 0;
}

static int s_count_outbox(const store_outbox_t *row, void *arg)
{
    (void)row;
    (*(int *)arg)++;
    return 0;
}

static int s_orders(fx_t *fx)
{
    int n = 0;
    assert_int_equal(store_order_list_all(fx->store, s_count_order, &n), SOUK_OK);
    return n;
}

static int s_tickets(fx_t *fx)
{
    int n = 0;
    assert_int_equal(store_ticket_list_all(fx->store, s_count_ticket, &n), SOUK_OK);
    return n;
}

static int s_outbox_rows(fx_t *fx)
{
    int n = 0;
    assert_int_equal(store_outbox_due(fx->store, STORE_OUTBOX_QUEUED, INT64_MAX, 1000,
                                      s_count_outbox, &n), SOUK_OK);
    return n;
}

/* The outbox row of key (caller clears), asserting it is a queued notification. */
static void s_outbox(fx_t *fx, const char *key, store_outbox_t *o)
{
    memset(o, 0, sizeof *o);
    int rc = store_outbox_get(fx->store, key, o);
    if (rc != SOUK_OK)
        fail_msg("outbox row %s: %s", key, souk_errname(rc));
    assert_int_equal(o->kind, STORE_KIND_NOTIFY);
    assert_int_equal(o->state, STORE_OUTBOX_QUEUED);
    assert_null(o->waid);
}

static bool s_outbox_has(fx_t *fx, const char *key)
{
    store_outbox_t o = { 0 };
    int rc = store_outbox_get(fx->store, key, &o);
    store_outbox_clear(&o);
    return rc == SOUK_OK;
}

static char *s_place(fx_t *fx, const char *waid, const char *args, const char *key)
{
    json_t *r = s_ok(fx, waid, "place_order", args, key);
    char *id = strdup(s_get(r, "order_id"));
    json_decref(r);
    return id;
}

/* ---- the table ---------------------------------------------------------------------- */

/* No field anywhere in a schema may name or carry a user. */
static void s_no_identity_fields(const json_t *schema)
{
    static const char *const banned[] = { "user", "user_id", "waid", "wa_id", "phone", "customer",
                                          "customer_id", "from", "identity", NULL };
    const json_t *props = json_object_get(schema, "properties");
    const char *name;
    json_t *sub;
    json_object_foreach((json_t *)props, name, sub) {
        for (int i = 0; banned[i]; i++)
            if (strcmp(name, banned[i]) == 0)
                fail_msg("schema field '%s' names a user", name);
        s_no_identity_fields(sub);
    }
    if (json_object_get(schema, "items"))
        s_no_identity_fields(json_object_get(schema, "items"));
}

/* One valid call per tool using every field, so every keyword is exercised. */
static const char *const s_full_args[][2] = {
    { "search_products", "{\"query\":\"mascara\",\"filters\":{\"category\":\"beauty\",\"max_price\":20,"
                         "\"in_stock\":true},\"limit\":3}" },
    { "get_product", "{\"product_id\":\"BEA-MASC\"}" },
    { "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":2}],\"note\":\"door\"}" },
    { "get_order", "{\"order_id\":\"SK-AAAAA\"}" },
    { "list_orders", "{}" },
    { "cancel_order", "{\"order_id\":\"SK-AAAAA\"}" },
    { "create_support_ticket", "{\"subject\":\"Late\",\"message\":\"Where is it?\",\"order_id\":\"SK-AAAAA\"}" },
};

static void test_table_and_openai_array(void **state)
{
    (void)state;
    size_t n = 0;
    const tools_def_t *defs = tools_defs(&n);
    assert_int_equal(n, 7);
    json_error_t e;
    json_t *arr = json_loads(tools_schemas_json(), 0, &e);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), n);
    int changing = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(arr, i);
        assert_string_equal(s_get(t, "type"), "function");
        json_t *f = json_object_get(t, "function");
        assert_string_equal(s_get(f, "name"), defs[i].name);
        assert_true(strlen(s_get(f, "description")) > 40);
        json_t *p = json_object_get(f, "parameters");
        assert_string_equal(s_get(p, "type"), "object");
        assert_true(json_is_false(json_object_get(p, "additionalProperties")));
        assert_true(json_is_object(json_object_get(p, "properties")));
        assert_true(json_is_array(json_object_get(p, "required")));
        s_no_identity_fields(p);
        assert_ptr_equal(tools_find(defs[i].name), &defs[i]);
        changing += defs[i].changes_state;
        /* every schema is within the validator's subset: a full call passes */
        json_t *args = NULL;
        char err[512];
        assert_string_equal(s_full_args[i][0], defs[i].name);
        int rc = tools_validate_args(defs[i].name, s_full_args[i][1], &args, err, sizeof err);
        if (rc != SOUK_OK)
            fail_msg("%s: %s", defs[i].name, err);
        assert_int_equal(tools_validate(p, args, err, sizeof err), SOUK_OK);
        json_decref(args);
    }
    assert_int_equal(changing, 3);
    assert_true(tools_find("place_order")->changes_state);
    assert_false(tools_find("get_order")->changes_state);
    assert_null(tools_find("drop_tables"));
    assert_null(tools_find(NULL));
    json_decref(arr);
}

static void test_docs_follow_the_table(void **state)
{
    (void)state;
    char *gen = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&gen, &len);
    tools_docs_markdown(mem);
    fclose(mem);
    assert_non_null(strstr(gen, "`items[].quantity` | integer | yes | 1..100"));
    char path[512];
    snprintf(path, sizeof path, "%s/docs/TOOLS.md", SOUK_SRC_DIR);
    if (getenv("SOUK_WRITE_DOCS")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(gen, f);
        fclose(f);
    }
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s is missing: run with SOUK_WRITE_DOCS=1 to write it", path);
    char *disk = calloc(1, len + 2);
    size_t got = fread(disk, 1, len + 1, f);
    fclose(f);
    if (got != len || memcmp(disk, gen, len) != 0)
        fail_msg("%s is not what the table says: run with SOUK_WRITE_DOCS=1", path);
    free(disk);
    free(gen);
}

/* ---- validation ---------------------------------------------------------------------- */

static void test_every_validation_error(void **state)
{
    fx_t *fx = *state;
    static const char *const cases[][3] = {
        { "search_products", "{}", "Invalid arguments for search_products: query: is required." },
        { "search_products", "{\"query\":\"\"}", "query: must not be empty" },
        { "search_products", "{\"query\":5}", "query: must be a string" },
        { "search_products", "{\"query\":null}", "query: must be a string" },
        { "search_products", "{\"query\":\"x\",\"limit\":0}", "limit: must be an integer between 1 and 20" },
        { "search_products", "{\"query\":\"x\",\"limit\":21}", "limit: must be an integer between 1 and 20" },
        { "search_products", "{\"query\":\"x\",\"limit\":2.5}", "limit: must be an integer between 1 and 20" },
        { "search_products", "{\"query\":\"x\",\"limit\":\"3\"}", "limit: must be an integer" },
        { "search_products", "{\"query\":\"x\",\"user\":\"15551230002\"}",
          "user: unknown field (the fields are: query, filters, limit)" },
        { "search_products", "{\"query\":\"x\",\"filters\":{\"max_price\":-1}}",
          "filters.max_price: must be a number between 0 and 100000000" },
        { "search_products", "{\"query\":\"x\",\"filters\":{\"in_stock\":\"yes\"}}",
          "filters.in_stock: must be true or false" },
        { "search_products", "{\"query\":\"x\",\"filters\":{\"colour\":\"red\"}}",
          "filters.colour: unknown field (the fields are: category, max_price, in_stock)" },
        { "search_products", "{\"query\":\"x\",\"filters\":[]}", "filters: must be an object" },
        { "get_product", "{\"product_id\":\"\"}", "product_id: must not be empty" },
        { "get_product", "{\"sku\":\"BEA-MASC\"}", "sku: unknown field (the fields are: product_id)" },
        { "place_order", "{}", "items: is required" },
        { "place_order", "{\"items\":[]}", "items: must be an array of 1 to 20 items" },
        { "place_order", "{\"items\":\"BEA-MASC\"}", "items: must be an array of 1 to 20 items" },
        { "place_order", "{\"items\":[5]}", "items[0]: must be an object" },
        { "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\"}]}", "items[0].quantity: is required" },
        { "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1},{\"product_id\":\"SHO-RUN\",\"quantity\":0}]}",
          "items[1].quantity: must be an integer between 1 and 100" },
        { "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1},{\"product_id\":\"SHO-RUN\",\"quantity\":101}]}",
          "items[1].quantity: must be an integer between 1 and 100" },
        { "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":-3}]}",
          "items[0].quantity: must be an integer between 1 and 100" },
        { "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1,\"price\":0.01}]}",
          "items[0].price: unknown field (the fields are: product_id, quantity)" },
        { "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1}],\"total\":1}",
          "total: unknown field" },
        { "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1}],\"waid\":\"15551230002\"}",
          "waid: unknown field" },
        { "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":60},{\"product_id\":\"BEA-MASC\",\"quantity\":41}]}",
          "items[1]: product 'BEA-MASC' is listed more than once, over 100 in all" },
        { "get_order", "{}", "order_id: is required" },
        { "get_order", "{\"order_id\":7}", "order_id: must be a string" },
        { "list_orders", "{\"waid\":\"15551230002\"}", "waid: unknown field (this takes no arguments)" },
        { "cancel_order", "{\"order_id\":[\"SK-1\"]}", "order_id: must be a string" },
        { "create_support_ticket", "{\"subject\":\"Broken\"}", "message: is required" },
        { "create_support_ticket", "{\"subject\":\"\",\"message\":\"x\"}", "subject: must not be empty" },
        { "create_support_ticket", "{\"subject\":\"a\",\"message\":\"b\",\"order_id\":\"\"}", "order_id: must not be empty" },
        { "search_products", "{", "are not valid JSON" },
        { "search_products", "[\"mascara\"]", "arguments: must be an object" },
        { "search_products", "{\"query\":\"a\",\"query\":\"b\"}", "are not valid JSON: duplicate object key" },
        { "search_products", "\"mascara\"", "are not valid JSON" },
        { "transfer_money", "{}", "There is no tool named 'transfer_money'." },
        { "", "{}", "There is no tool named ''." },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_err(fx, ANA, cases[i][0], cases[i][1], "key-1", SOUK_EINVAL, cases[i][2]);
    char longq[300] = "{\"query\":\"";
    memset(longq + strlen(longq), 'x', 201);
    strcat(longq, "\"}");
    s_err(fx, ANA, "search_products", longq, NULL, SOUK_EINVAL,
          "query: must be at most 200 characters long (it has 201)");
    /* within bounds: characters, not bytes; 2.0 is an integer */
    char args[2048] = "{\"query\":\"";
    for (int i = 0; i < 200; i++)
        strcat(args, "\xC3\xA9");
    strcat(args, "\",\"limit\":2.0}");
    call_t c = s_call(fx, ANA, "search_products", args, NULL);
    assert_int_equal(c.rc, SOUK_OK);
    s_call_clear(&c);
    /* an invalid call changed nothing */
    assert_int_equal(s_orders(fx), 0);
    assert_int_equal(s_outbox_rows(fx), 0);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 10);
    assert_int_equal(fx->nhints, 0);
}

static void test_validator_subset(void **state)
{
    (void)state;
    char err[256];
    json_t *schema = json_loads("{\"type\":\"object\",\"properties\":{\"size\":{\"enum\":[\"S\",\"M\"]},"
                                "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":3}}},"
                                "\"required\":[],\"additionalProperties\":false}", 0, NULL);
    json_t *doc = json_loads("{\"size\":\"L\"}", 0, NULL);
    assert_int_equal(tools_validate(schema, doc, err, sizeof err), SOUK_EINVAL);
    assert_string_equal(err, "size: must be one of: \"S\", \"M\"");
    json_decref(doc);
    doc = json_loads("{\"tags\":[\"ok\",\"long\"]}", 0, NULL);
    assert_int_equal(tools_validate(schema, doc, err, sizeof err), SOUK_EINVAL);
    assert_string_equal(err, "tags[1]: must be at most 3 characters long (it has 4)");
    json_decref(doc);
    doc = json_loads("{\"tags\":[\"ok\"],\"size\":\"M\"}", 0, NULL);
    assert_int_equal(tools_validate(schema, doc, err, sizeof err), SOUK_OK);
    json_decref(doc);
    json_decref(schema);
    /* a keyword outside the subset is refused, not ignored */
    schema = json_loads("{\"type\":\"string\",\"pattern\":\"^a\"}", 0, NULL);
    doc = json_string("b");
    assert_int_equal(tools_validate(schema, doc, err, sizeof err), SOUK_ECONFIG);
    assert_non_null(strstr(err, "unsupported keyword 'pattern'"));
    json_decref(schema);
    schema = json_loads("{\"type\":\"object\",\"additionalProperties\":true}", 0, NULL);
    assert_int_equal(tools_validate(schema, doc, err, sizeof err), SOUK_ECONFIG);
    json_decref(schema);
    json_decref(doc);
}

/* ---- fuzz ------------------------------------------------------------------------ */

static uint32_t s_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static json_t *s_random_json(uint32_t *seed, int depth)
{
    static const char *const words[] = { "query", "items", "product_id", "quantity", "filters",
                                         "limit", "note", "order_id", "subject", "message",
                                         "max_price", "in_stock", "category", "BEA-MASC",
                                         "WAT-LAST", "SK-AAAAA", "", "\xE2\x82\xAC", "user" };
    const size_t nwords = sizeof words / sizeof words[0];
    switch (s_rand(seed) % (depth > 3 ? 6 : 8)) {
    case 0: return json_null();
    case 1: return json_boolean(s_rand(seed) & 1);
    case 2: return json_integer((json_int_t)(s_rand(seed) % 300) - 100);
    case 3: return json_real((double)(s_rand(seed) % 100000) / 7.0 - 50);
    case 4: case 5: return json_string(words[s_rand(seed) % nwords]);
    case 6: {
        json_t *a = json_array();
        for (uint32_t i = s_rand(seed) % 4; i > 0; i--)
            json_array_append_new(a, s_random_json(seed, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (uint32_t i = s_rand(seed) % 5; i > 0; i--)
            json_object_set_new(o, words[s_rand(seed) % nwords], s_random_json(seed, depth + 1));
        return o;
    }
    }
}

static void test_fuzz_arguments(void **state)
{
    fx_t *fx = *state;
    uint32_t seed = 0x9e3779b9u;
    size_t ntools = 0;
    const tools_def_t *defs = tools_defs(&ntools);
    int ok = 0;
    for (int i = 0; i < 3000; i++) {
        json_t *doc = s_random_json(&seed, 0);
        char *text = json_dumps(doc, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(doc);
        /* sometimes mangle the text: truncate it or flip a byte */
        size_t len = strlen(text);
        if (len > 1 && s_rand(&seed) % 4 == 0)
            text[s_rand(&seed) % len] = (char)(s_rand(&seed) % 255 + 1);
        if (len > 1 && s_rand(&seed) % 4 == 0)
            text[s_rand(&seed) % len] = '\0';
        const char *tool = defs[s_rand(&seed) % ntools].name;
        char key[32];
        snprintf(key, sizeof key, "fuzz-%d", i);
        call_t c = s_call(fx, s_rand(&seed) % 8 ? ANA : "not-a-waid", tool, text, key);
        ok += c.rc == SOUK_OK;
        assert_true(c.rc == SOUK_OK || c.rc == SOUK_EINVAL || c.rc == SOUK_ENOTFOUND
                    || c.rc == SOUK_ESTOCK || c.rc == SOUK_EFORBIDDEN || c.rc == SOUK_ESTATE);
        s_call_clear(&c);
        free(text);
    }
    assert_true(ok > 0); /* list_orders {} at least */
    assert_true(s_stock(fx, "WAT-LAST") >= 0);
}

/* ---- identity ----------------------------------------------------------------------- */

static void test_no_identity_refused(void **state)
{
    fx_t *fx = *state;
    static const char *const bad[] = { "", "abc", "+15551230001", "whatsapp:+15551230001",
                                       "123456789012345678901", "1555 123", "1555123\n" };
    size_t n = 0;
    const tools_def_t *defs = tools_defs(&n);
    for (size_t t = 0; t < n; t++) {
        s_err(fx, NULL, defs[t].name, s_full_args[t][1], "k", SOUK_EFORBIDDEN, "no valid user identity");
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
            s_err(fx, bad[i], defs[t].name, s_full_args[t][1], "k", SOUK_EFORBIDDEN,
                  "no valid user identity");
    }
    assert_true(tools_waid_valid("1"));
    assert_true(tools_waid_valid("12345678901234567890"));
    assert_int_equal(s_orders(fx), 0);
    assert_int_equal(s_tickets(fx), 0);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 10);
}

static void test_idem_key_required(void **state)
{
    fx_t *fx = *state;
    const char *args = "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1}]}";
    s_err(fx, ANA, "place_order", args, NULL, SOUK_EINVAL, "needs an idempotency key");
    s_err(fx, ANA, "place_order", args, "", SOUK_EINVAL, "needs an idempotency key");
    s_err(fx, ANA, "place_order", args, "has space", SOUK_EINVAL, "needs an idempotency key");
    char longkey[TOOLS_IDEM_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    s_err(fx, ANA, "place_order", args, longkey, SOUK_EINVAL, "needs an idempotency key");
    s_err(fx, ANA, "cancel_order", "{\"order_id\":\"SK-AAAAA\"}", NULL, SOUK_EINVAL, "needs an idempotency key");
    s_err(fx, ANA, "create_support_ticket", "{\"subject\":\"a\",\"message\":\"b\"}", NULL, SOUK_EINVAL,
          "needs an idempotency key");
    assert_int_equal(s_orders(fx), 0);
    assert_int_equal(s_tickets(fx), 0);
    /* reading needs none */
    json_decref(s_ok(fx, ANA, "list_orders", "{}", NULL));
}

/* B asks about A's order: the answer is word for word the one for a missing id. */
static void s_same_as_missing(fx_t *fx, const char *tool, const char *fmt, const char *a_id, const char *key)
{
    char args_a[256], args_m[256];
    snprintf(args_a, sizeof args_a, fmt, a_id);
    snprintf(args_m, sizeof args_m, fmt, "SK-ZZZZZ");
    call_t ca = s_call(fx, BEN, tool, args_a, key);
    call_t cm = s_call(fx, BEN, tool, args_m, key);
    assert_int_equal(ca.rc, SOUK_ENOTFOUND);
    assert_int_equal(cm.rc, SOUK_ENOTFOUND);
    char *p = strstr(ca.text, a_id);
    assert_non_null(p);
    memcpy(p, "SK-ZZZZZ", strlen(a_id));
    assert_string_equal(ca.text, cm.text);
    s_call_clear(&ca);
    s_call_clear(&cm);
}

static void test_users_see_only_their_own(void **state)
{
    fx_t *fx = *state;
    char *a_id = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":2}]}", "ana-1");
    assert_int_equal(strlen(a_id), strlen("SK-ZZZZZ"));
    s_same_as_missing(fx, "get_order", "{\"order_id\":\"%s\"}", a_id, NULL);
    s_same_as_missing(fx, "cancel_order", "{\"order_id\":\"%s\"}", a_id, "ben-cancel");
    s_same_as_missing(fx, "create_support_ticket",
                      "{\"subject\":\"Refund\",\"message\":\"refund it\",\"order_id\":\"%s\"}", a_id,
                      "ben-ticket");
    /* nothing of A's moved; B has nothing */
    char args[128];
    snprintf(args, sizeof args, "{\"order_id\":\"%s\"}", a_id);
    json_t *r = s_ok(fx, ANA, "get_order", args, NULL);
    assert_string_equal(s_get(r, "status"), "pending");
    json_decref(r);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 8);
    r = s_ok(fx, BEN, "list_orders", "{}", NULL);
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);
    assert_int_equal(s_tickets(fx), 0);
    /* B reusing A's idempotency key gets B's own new order, never A's */
    char *b_id = s_place(fx, BEN, "{\"items\":[{\"product_id\":\"SHO-RUN\",\"quantity\":1}]}", "ana-1");
    assert_string_not_equal(a_id, b_id);
    store_order_t o = { 0 };
    assert_int_equal(store_order_get(fx->store, b_id, BEN, &o), SOUK_OK);
    store_order_clear(&o);
    /* and A's ticket is not B's */
    r = s_ok(fx, ANA, "create_support_ticket", "{\"subject\":\"Late\",\"message\":\"where?\"}", "ana-t");
    store_ticket_t t = { 0 };
    assert_int_equal(store_ticket_get(fx->store, s_get(r, "ticket_id"), BEN, &t), SOUK_ENOTFOUND);
    assert_int_equal(store_ticket_get(fx->store, s_get(r, "ticket_id"), ANA, &t), SOUK_OK);
    store_ticket_clear(&t);
    json_decref(r);
    free(a_id);
    free(b_id);
}

/* ---- products ----------------------------------------------------------------------- */

static void test_search_products(void **state)
{
    fx_t *fx = *state;
    call_t c = s_call(fx, ANA, "search_products", "{\"query\":\"mascara\"}", NULL);
    assert_int_equal(c.rc, SOUK_OK);
    assert_true(json_is_array(c.json));
    assert_true(json_array_size(c.json) >= 1 && json_array_size(c.json) <= 5);
    json_t *first = json_array_get(c.json, 0);
    assert_string_equal(s_get(first, "product_id"), "BEA-MASC");
    assert_string_equal(s_get(first, "name"), "Essence Mascara Lash Princess");
    assert_string_equal(s_get(first, "currency"), "USD");
    assert_int_equal(json_integer_value(json_object_get(first, "stock")), 10);
    assert_true(json_is_number(json_object_get(first, "score")));
    assert_non_null(strstr(c.text, "\"price\":9.99,")); /* money: 2 places, exact */
    s_call_clear(&c);

    json_t *r = s_ok(fx, ANA, "search_products", "{\"query\":\"running shoes\",\"limit\":1}", NULL);
    assert_int_equal(json_array_size(r), 1);
    assert_string_equal(s_get(json_array_get(r, 0), "product_id"), "SHO-RUN");
    json_decref(r);

    r = s_ok(fx, ANA, "search_products", "{\"query\":\"phone lipstick mascara shoes watch\",\"limit\":20,"
                                        "\"filters\":{\"max_price\":60}}", NULL);
    assert_true(json_array_size(r) >= 2);
    size_t i;
    json_t *h;
    json_array_foreach(r, i, h)
        assert_true(json_number_value(json_object_get(h, "price")) <= 60.0);
    json_decref(r);

    r = s_ok(fx, ANA, "search_products", "{\"query\":\"lipstick\",\"filters\":{\"in_stock\":true}}", NULL);
    json_array_foreach(r, i, h) {
        assert_string_not_equal(s_get(h, "product_id"), "BEA-LIP");
        assert_true(json_integer_value(json_object_get(h, "stock")) > 0);
    }
    json_decref(r);

    r = s_ok(fx, ANA, "search_products", "{\"query\":\"camera\",\"filters\":{\"category\":\"smartphones\"}}", NULL);
    assert_true(json_array_size(r) >= 1);
    json_array_foreach(r, i, h)
        assert_string_equal(s_get(h, "product_id"), "PHO-13");
    json_decref(r);

    r = s_ok(fx, ANA, "search_products", "{\"query\":\"mascara\",\"filters\":{\"category\":\"no-such-thing\"}}", NULL);
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);

    /* no index: a clear error, not a crash */
    search_t *s = fx->ctx.search;
    fx->ctx.search = NULL;
    s_err(fx, ANA, "search_products", "{\"query\":\"mascara\"}", NULL, SOUK_EUNAVAIL, "not available");
    fx->ctx.search = s;
}

static void test_get_product(void **state)
{
    fx_t *fx = *state;
    json_t *r = s_ok(fx, ANA, "get_product", "{\"product_id\":\"BEA-MASC\"}", NULL);
    assert_string_equal(s_get(r, "product_id"), "BEA-MASC");
    assert_string_equal(s_get(r, "brand"), "Essence");
    assert_string_equal(s_get(r, "category"), "beauty");
    assert_non_null(strstr(s_get(r, "description"), "volumizing"));
    assert_true(json_number_value(json_object_get(r, "price")) == 9.99);
    assert_true(json_is_true(json_object_get(r, "in_stock")));
    json_t *attrs = json_object_get(r, "attributes");
    assert_string_equal(s_get(attrs, "warranty"), "No warranty");
    assert_string_equal(s_get(attrs, "return_policy"), "30 days, unopened");
    assert_string_equal(s_get(attrs, "shipping"), "Ships in 2 days");
    json_decref(r);
    s_err(fx, ANA, "get_product", "{\"product_id\":\"NOPE-1\"}", NULL, SOUK_ENOTFOUND,
          "No product with product_id 'NOPE-1' exists.");

    /* a huge description is cut so the answer always fits a TOOL_RESULT */
    char *big = malloc(20001);
    memset(big, 'a', 20000);
    big[20000] = '\0';
    store_product_t p = { .sku = "BIG-1", .name = "Big", .description = big, .price_cents = 100,
                          .currency = "USD", .stock = 1, .updated_ms = T0 };
    assert_int_equal(store_product_upsert(fx->store, &p, 1, NULL), SOUK_OK);
    call_t c = s_call(fx, ANA, "get_product", "{\"product_id\":\"BIG-1\"}", NULL);
    assert_int_equal(c.rc, SOUK_OK);
    assert_true(strlen(c.text) < 8000);
    assert_non_null(strstr(s_get(c.json, "description"), "\xE2\x80\xA6"));
    s_call_clear(&c);
    free(big);
}

/* ---- orders --------------------------------------------------------------------------- */

static void test_place_order_and_notify(void **state)
{
    fx_t *fx = *state;
    store_user_seen_t seen = { .waid = ANA, .profile_name = "Ana", .inbound = true, .now_ms = T0 };
    assert_int_equal(store_user_seen(fx->store, &seen), SOUK_OK);
    call_t c = s_call(fx, ANA, "place_order",
                      "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":2},"
                      "{\"product_id\":\"SHO-RUN\",\"quantity\":1}],\"note\":\"Leave at the door\"}",
                      "msg-1#1");
    assert_int_equal(c.rc, SOUK_OK);
    const char *id = s_get(c.json, "order_id");
    assert_true(strncmp(id, "SK-", 3) == 0);
    assert_string_equal(s_get(c.json, "status"), "pending");
    assert_string_equal(s_get(c.json, "currency"), "USD");
    assert_string_equal(s_get(c.json, "note"), "Leave at the door");
    json_t *items = json_object_get(c.json, "items");
    assert_int_equal(json_array_size(items), 2);
    json_t *it = json_array_get(items, 0);
    assert_string_equal(s_get(it, "product_id"), "BEA-MASC");
    assert_string_equal(s_get(it, "name"), "Essence Mascara Lash Princess");
    assert_int_equal(json_integer_value(json_object_get(it, "quantity")), 2);
    /* prices and totals from the store, exact to the cent in the text */
    assert_non_null(strstr(c.text, "\"unit_price\":9.99,"));
    assert_non_null(strstr(c.text, "\"line_total\":19.98"));
    assert_non_null(strstr(c.text, "\"total\":79.97,"));
    assert_int_equal(s_stock(fx, "BEA-MASC"), 8);
    assert_int_equal(s_stock(fx, "SHO-RUN"), 4);

    /* the merchant's WhatsApp text, with the customer's full number */
    char key[64];
    store_outbox_t o;
    snprintf(key, sizeof key, "m:%s", id);
    s_outbox(fx, key, &o);
    assert_string_equal(o.to_addr, MERCHANT_ADDR);
    char want[256];
    snprintf(want, sizeof want, "New order %s from Ana, +%s: 2 \xC3\x97 Essence Mascara Lash Princess, "
             "1 \xC3\x97 Trail Running Sneakers. Total $79.97.\nNote: Leave at the door", id, ANA);
    assert_string_equal(o.body, want);
    store_outbox_clear(&o);
    /* the webhook document */
    snprintf(key, sizeof key, "w:%s", id);
    s_outbox(fx, key, &o);
    assert_string_equal(o.to_addr, WEBHOOK);
    json_t *doc = json_loads(o.body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(s_get(doc, "event"), "order.created");
    assert_string_equal(s_get(doc, "id"), key);
    assert_string_equal(s_get(json_object_get(doc, "customer"), "waid"), ANA);
    assert_string_equal(s_get(json_object_get(doc, "customer"), "phone"), "+" ANA);
    assert_string_equal(s_get(json_object_get(doc, "customer"), "name"), "Ana");
    assert_string_equal(s_get(json_object_get(doc, "order"), "order_id"), id);
    assert_non_null(strstr(o.body, "\"total\":79.97"));
    json_decref(doc);
    store_outbox_clear(&o);
    /* both hinted to the sender */
    assert_int_equal(fx->nhints, 2);
    snprintf(key, sizeof key, "m:%s", id);
    assert_string_equal(fx->hints[0], key);
    snprintf(key, sizeof key, "w:%s", id);
    assert_string_equal(fx->hints[1], key);
    s_call_clear(&c);

    /* no merchant configured: no rows */
    fx->ctx.merchant_whatsapp = NULL;
    fx->ctx.merchant_webhook = "";
    char *id2 = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1}]}", "msg-2#1");
    assert_int_equal(s_outbox_rows(fx), 2);
    free(id2);
}

static void test_place_order_retry_same_key(void **state)
{
    fx_t *fx = *state;
    const char *args = "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":3}]}";
    call_t a = s_call(fx, ANA, "place_order", args, "SMa#2");
    call_t b = s_call(fx, ANA, "place_order", args, "SMa#2");
    assert_int_equal(a.rc, SOUK_OK);
    assert_int_equal(b.rc, SOUK_OK);
    assert_string_equal(a.text, b.text);
    /* even with other arguments, the key answers the first result */
    call_t d = s_call(fx, ANA, "place_order", "{\"items\":[{\"product_id\":\"SHO-RUN\",\"quantity\":1}]}", "SMa#2");
    assert_string_equal(a.text, d.text);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 7);
    assert_int_equal(s_stock(fx, "SHO-RUN"), 5);
    assert_int_equal(s_orders(fx), 1);
    assert_int_equal(s_outbox_rows(fx), 2);
    assert_int_equal(fx->nhints, 2);
    /* a new key is a new order */
    call_t e = s_call(fx, ANA, "place_order", args, "SMa#3");
    assert_int_equal(e.rc, SOUK_OK);
    assert_string_not_equal(s_get(a.json, "order_id"), s_get(e.json, "order_id"));
    assert_int_equal(s_stock(fx, "BEA-MASC"), 4);
    assert_int_equal(s_orders(fx), 2);
    s_call_clear(&a);
    s_call_clear(&b);
    s_call_clear(&d);
    s_call_clear(&e);
}

/* Runs one call in a child that crashes at hint number `at`; returns its exit status. */
static int s_crash_child(fx_t *fx, int at, const char *waid, const char *tool, const char *args,
                         const char *key)
{
    s_close(fx); /* a handle must not cross fork() */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        s_open(fx, false);
        fx->nhints = 0;
        fx->exit_at_hint = at;
        char *r = NULL, *e = NULL;
        tools_exec(&fx->ctx, waid, tool, args, key, &r, &e);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    s_open(fx, true);
    fx->nhints = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_place_order_crash_then_retry(void **state)
{
    fx_t *fx = *state;
    const char *args = "{\"items\":[{\"product_id\":\"PHO-13\",\"quantity\":1}]}";
    /* dies after the order and its first notification, before the webhook row and the result */
    assert_int_equal(s_crash_child(fx, 1, ANA, "place_order", args, "SMcrash#1"), 42);
    assert_int_equal(s_orders(fx), 1);
    assert_int_equal(s_stock(fx, "PHO-13"), 1);
    assert_int_equal(s_outbox_rows(fx), 1);
    /* the session retries with the same key: the same order, completed */
    json_t *r = s_ok(fx, ANA, "place_order", args, "SMcrash#1");
    assert_int_equal(s_orders(fx), 1);
    assert_int_equal(s_stock(fx, "PHO-13"), 1);
    char key[64];
    snprintf(key, sizeof key, "w:%s", s_get(r, "order_id"));
    assert_true(s_outbox_has(fx, key));
    snprintf(key, sizeof key, "m:%s", s_get(r, "order_id"));
    assert_true(s_outbox_has(fx, key));
    assert_int_equal(s_outbox_rows(fx), 2);
    json_t *again = s_ok(fx, ANA, "place_order", args, "SMcrash#1");
    assert_true(json_equal(r, again));
    json_decref(again);
    json_decref(r);
    assert_int_equal(s_outbox_rows(fx), 2);
}

static void test_stock_and_unknown_products(void **state)
{
    fx_t *fx = *state;
    s_err(fx, ANA, "place_order", "{\"items\":[{\"product_id\":\"WAT-LAST\",\"quantity\":3}]}", "k1",
          SOUK_ESTOCK, "Not enough stock for Limited Edition Watch (product_id WAT-LAST): 1 left, 3 asked. "
          "Nothing was ordered.");
    s_err(fx, ANA, "place_order", "{\"items\":[{\"product_id\":\"BEA-LIP\",\"quantity\":1}]}", "k2",
          SOUK_ESTOCK, "Red Lipstick (product_id BEA-LIP) is out of stock. Nothing was ordered.");
    /* all or nothing: the first line is not taken when the second is short */
    s_err(fx, ANA, "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":2},"
                                  "{\"product_id\":\"WAT-LAST\",\"quantity\":2}]}", "k3",
          SOUK_ESTOCK, "Limited Edition Watch");
    s_err(fx, ANA, "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":2},"
                                  "{\"product_id\":\"NOPE-9\",\"quantity\":1}]}", "k4",
          SOUK_ENOTFOUND, "No product with product_id 'NOPE-9' exists (items[1]). Nothing was ordered.");
    s_err(fx, ANA, "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1},"
                                  "{\"product_id\":\"MUG-EUR\",\"quantity\":1}]}", "k5",
          SOUK_EINVAL, "different currencies");
    assert_int_equal(s_stock(fx, "BEA-MASC"), 10);
    assert_int_equal(s_stock(fx, "WAT-LAST"), 1);
    assert_int_equal(s_stock(fx, "MUG-EUR"), 30);
    assert_int_equal(s_orders(fx), 0);
    assert_int_equal(s_outbox_rows(fx), 0);
    /* a failure is not recorded under its key: once stock is back, the same key works */
    store_product_t p = s_catalogue[4];
    p.stock = 5;
    assert_int_equal(store_product_upsert(fx->store, &p, 1, NULL), SOUK_OK);
    char *id = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"WAT-LAST\",\"quantity\":3}]}", "k1");
    assert_int_equal(s_stock(fx, "WAT-LAST"), 2);
    free(id);
    /* the same product twice is one line */
    json_t *r = s_ok(fx, ANA, "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1},"
                                             "{\"product_id\":\"BEA-MASC\",\"quantity\":2}]}", "k6");
    assert_int_equal(json_array_size(json_object_get(r, "items")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(r, "items"), 0),
                                                        "quantity")), 3);
    json_decref(r);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 7);
}

static void test_two_processes_race_for_the_last_item(void **state)
{
    fx_t *fx = *state;
    s_close(fx);
    int go[2];
    assert_int_equal(pipe(go), 0);
    const char *users[2] = { ANA, BEN };
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            close(go[1]);
            s_open(fx, false);
            char b;
            if (read(go[0], &b, 1) != 0) /* both start when the pipe closes */
                _exit(3);
            char *r = NULL, *e = NULL;
            int rc = tools_exec(&fx->ctx, users[k], "place_order",
                                "{\"items\":[{\"product_id\":\"WAT-LAST\",\"quantity\":1}]}", "race#1",
                                &r, &e);
            _exit(rc == SOUK_OK ? 0 : rc == SOUK_ESTOCK ? 1 : 2);
        }
    }
    close(go[0]);
    usleep(50000);
    close(go[1]);
    int codes[2];
    for (int k = 0; k < 2; k++) {
        int status = 0;
        waitpid(pids[k], &status, 0);
        assert_true(WIFEXITED(status));
        codes[k] = WEXITSTATUS(status);
    }
    s_open(fx, true);
    assert_int_equal(codes[0] + codes[1], 1); /* one 0 (won), one 1 (ESTOCK) */
    assert_int_equal(s_stock(fx, "WAT-LAST"), 0);
    assert_int_equal(s_orders(fx), 1);
}

static void test_get_and_list_orders(void **state)
{
    fx_t *fx = *state;
    char *first = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1}]}", "l1");
    char *second = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"SHO-RUN\",\"quantity\":2}]}", "l2");
    json_t *list = s_ok(fx, ANA, "list_orders", "{}", NULL);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(s_get(json_array_get(list, 0), "order_id"), second);
    assert_string_equal(s_get(json_array_get(list, 1), "order_id"), first);
    json_decref(list);
    list = s_ok(fx, ANA, "list_orders", NULL, NULL); /* no arguments text at all */
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
    char args[64];
    snprintf(args, sizeof args, "{\"order_id\":\"%s\"}", second);
    json_t *o = s_ok(fx, ANA, "get_order", args, NULL);
    assert_string_equal(s_get(o, "order_id"), second);
    assert_true(json_number_value(json_object_get(o, "total")) == 119.98);
    assert_non_null(strstr(s_get(o, "created_at"), "T"));
    json_decref(o);
    s_err(fx, ANA, "get_order", "{\"order_id\":\"SK-ZZZZZ\"}", NULL, SOUK_ENOTFOUND,
          "No order 'SK-ZZZZZ' was found for this customer.");
    free(first);
    free(second);
}

static void test_cancel_gives_stock_back_once(void **state)
{
    fx_t *fx = *state;
    char *id = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":4},"
                                "{\"product_id\":\"SHO-RUN\",\"quantity\":2}]}", "c1");
    assert_int_equal(s_stock(fx, "BEA-MASC"), 6);
    fx->nhints = 0;
    char args[64];
    snprintf(args, sizeof args, "{\"order_id\":\"%s\"}", id);
    call_t a = s_call(fx, ANA, "cancel_order", args, "cancel#1");
    assert_int_equal(a.rc, SOUK_OK);
    assert_string_equal(s_get(a.json, "status"), "cancelled");
    assert_null(json_object_get(a.json, "already_cancelled"));
    assert_int_equal(s_stock(fx, "BEA-MASC"), 10);
    assert_int_equal(s_stock(fx, "SHO-RUN"), 5);
    char key[64];
    snprintf(key, sizeof key, "m:%s:cancelled", id);
    store_outbox_t o;
    s_outbox(fx, key, &o);
    assert_non_null(strstr(o.body, "was cancelled by the customer"));
    store_outbox_clear(&o);
    snprintf(key, sizeof key, "w:%s:cancelled", id);
    assert_true(s_outbox_has(fx, key));
    assert_int_equal(fx->nhints, 2);
    /* the same call again: the first result, nothing given twice */
    call_t b = s_call(fx, ANA, "cancel_order", args, "cancel#1");
    assert_string_equal(a.text, b.text);
    /* a new cancel of a cancelled order: fine, and still nothing given twice */
    call_t c = s_call(fx, ANA, "cancel_order", args, "cancel#2");
    assert_int_equal(c.rc, SOUK_OK);
    assert_true(json_is_true(json_object_get(c.json, "already_cancelled")));
    assert_int_equal(s_stock(fx, "BEA-MASC"), 10);
    assert_int_equal(s_stock(fx, "SHO-RUN"), 5);
    assert_int_equal(s_outbox_rows(fx), 4); /* created and cancelled, each once */
    s_call_clear(&a);
    s_call_clear(&b);
    s_call_clear(&c);
    free(id);
}

static void test_cancel_crash_recovery(void **state)
{
    fx_t *fx = *state;
    char *id = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":4},"
                                "{\"product_id\":\"SHO-RUN\",\"quantity\":2}]}", "cc1");
    char args[64];
    snprintf(args, sizeof args, "{\"order_id\":\"%s\"}", id);
    /* a tool that died right after the status move, before any stock went back */
    assert_int_equal(store_order_transition(fx->store, id, ANA, STORE_ORDER_CANCELLED, T0, NULL), SOUK_OK);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 6);
    json_decref(s_ok(fx, ANA, "cancel_order", args, "cc#1"));
    assert_int_equal(s_stock(fx, "BEA-MASC"), 10);
    assert_int_equal(s_stock(fx, "SHO-RUN"), 5);

    /* a tool that died after giving stock back, before recording its result */
    char *id2 = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1}]}", "cc2");
    snprintf(args, sizeof args, "{\"order_id\":\"%s\"}", id2);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 9);
    assert_int_equal(s_crash_child(fx, 1, ANA, "cancel_order", args, "cc#2"), 42);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 10);
    json_t *r = s_ok(fx, ANA, "cancel_order", args, "cc#2");
    assert_string_equal(s_get(r, "status"), "cancelled");
    json_decref(r);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 10);
    char key[64];
    snprintf(key, sizeof key, "w:%s:cancelled", id2);
    assert_true(s_outbox_has(fx, key));
    free(id);
    free(id2);
}

static void test_cancel_after_shipping_refused(void **state)
{
    fx_t *fx = *state;
    char *id = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":2}]}", "s1");
    assert_int_equal(store_order_transition(fx->store, id, ANA, STORE_ORDER_SHIPPED, T0, NULL), SOUK_OK);
    char args[64], want[128];
    snprintf(args, sizeof args, "{\"order_id\":\"%s\"}", id);
    snprintf(want, sizeof want, "Order %s is already shipped and can no longer be cancelled", id);
    s_err(fx, ANA, "cancel_order", args, "s#1", SOUK_ESTATE, want);
    assert_int_equal(s_stock(fx, "BEA-MASC"), 8);
    json_t *o = s_ok(fx, ANA, "get_order", args, NULL);
    assert_string_equal(s_get(o, "status"), "shipped");
    json_decref(o);
    free(id);
}

static void test_support_ticket(void **state)
{
    fx_t *fx = *state;
    char *id = s_place(fx, ANA, "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1}]}", "t0");
    fx->nhints = 0;
    char args[256];
    snprintf(args, sizeof args, "{\"subject\":\"Damaged parcel\",\"message\":\"The box arrived crushed.\","
             "\"order_id\":\"%s\"}", id);
    call_t a = s_call(fx, ANA, "create_support_ticket", args, "SMt#1");
    assert_int_equal(a.rc, SOUK_OK);
    const char *tid = s_get(a.json, "ticket_id");
    assert_true(strncmp(tid, "TK-", 3) == 0);
    assert_string_equal(s_get(a.json, "status"), "open");
    assert_string_equal(s_get(a.json, "order_id"), id);
    call_t b = s_call(fx, ANA, "create_support_ticket", args, "SMt#1");
    assert_string_equal(a.text, b.text);
    assert_int_equal(s_tickets(fx), 1);
    char key[64];
    store_outbox_t o;
    snprintf(key, sizeof key, "m:%s", tid);
    s_outbox(fx, key, &o);
    char want[256];
    snprintf(want, sizeof want, "New support ticket %s from +%s about order %s: Damaged parcel\n"
             "The box arrived crushed.", tid, ANA, id);
    assert_string_equal(o.body, want);
    store_outbox_clear(&o);
    snprintf(key, sizeof key, "w:%s", tid);
    s_outbox(fx, key, &o);
    assert_non_null(strstr(o.body, "\"event\":\"ticket.created\""));
    store_outbox_clear(&o);
    assert_int_equal(fx->nhints, 2);
    /* without an order */
    json_decref(s_ok(fx, ANA, "create_support_ticket", "{\"subject\":\"Hours\",\"message\":\"When do you open?\"}",
                     "SMt#2"));
    assert_int_equal(s_tickets(fx), 2);
    s_err(fx, ANA, "create_support_ticket", "{\"subject\":\"x\",\"message\":\"y\",\"order_id\":\"SK-ZZZZZ\"}",
          "SMt#3", SOUK_ENOTFOUND, "No order 'SK-ZZZZZ' was found for this customer.");
    assert_int_equal(s_tickets(fx), 2);
    s_call_clear(&a);
    s_call_clear(&b);
    free(id);
}

static void test_ticket_crash_then_retry(void **state)
{
    fx_t *fx = *state;
    const char *args = "{\"subject\":\"Late\",\"message\":\"Where is my parcel?\"}";
    assert_int_equal(s_crash_child(fx, 1, BEN, "create_support_ticket", args, "SMtc#1"), 42);
    assert_int_equal(s_tickets(fx), 1);
    json_t *r = s_ok(fx, BEN, "create_support_ticket", args, "SMtc#1");
    assert_int_equal(s_tickets(fx), 1);
    char key[64];
    snprintf(key, sizeof key, "w:%s", s_get(r, "ticket_id"));
    assert_true(s_outbox_has(fx, key));
    json_decref(r);
}

static void test_error_json(void **state)
{
    (void)state;
    char *t = tools_error_json(SOUK_ESTOCK);
    assert_string_equal(t, "{\"code\":\"ESTOCK\",\"retryable\":false}");
    free(t);
    t = tools_error_json(SOUK_EBUSY);
    assert_string_equal(t, "{\"code\":\"EBUSY\",\"retryable\":true}");
    free(t);
    assert_false(tools_error_retryable(SOUK_ENOTFOUND));
}

int main(void)
{
    souk_log_init("test_tools", NULL, getenv("SOUK_LOG_LEVEL") ? getenv("SOUK_LOG_LEVEL") : "warn");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_and_openai_array),
        cmocka_unit_test(test_docs_follow_the_table),
        cmocka_unit_test(test_validator_subset),
        cmocka_unit_test(test_error_json),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_every_validation_error),
        T(test_fuzz_arguments),
        T(test_no_identity_refused),
        T(test_idem_key_required),
        T(test_users_see_only_their_own),
        T(test_search_products),
        T(test_get_product),
        T(test_place_order_and_notify),
        T(test_place_order_retry_same_key),
        T(test_place_order_crash_then_retry),
        T(test_stock_and_unknown_products),
        T(test_two_processes_race_for_the_last_item),
        T(test_get_and_list_orders),
        T(test_cancel_gives_stock_back_once),
        T(test_cancel_crash_recovery),
        T(test_cancel_after_shipping_refused),
        T(test_support_ticket),
        T(test_ticket_crash_then_retry),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
