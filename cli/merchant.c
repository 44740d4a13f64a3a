/* What the merchant looks at, and two commands for trying the agent:
 *
 *   souk products [--json] [--count]     the catalogue, by SKU
 *   souk orders [--json]                 every order, newest first
 *   souk tickets [--json]                every support ticket, newest first
 *   souk search QUERY [--limit N] [--json] [--category C] [--max-price P] [--in-stock]
 *   souk understand TEXT [--json]        what the built-in agent makes of a message
 *
 * Tables are for people (phone numbers masked); --json is for scripts, one
 * document on stdout, also when there is nothing to list ({"orders":[]}).
 * Its field names are a contract:
 *   {"products":[{sku, name, description, price, price_cents, currency,
 *                 category, stock, image_url, brand, tags, attrs, updated}]}
 *   {"orders":[{id, user, items:[{sku, quantity, name, unit_price}], total,
 *               total_cents, currency, status, note, created, updated}]}
 *   {"tickets":[{id, user, subject, message, order_id, status, created, updated}]}
 *   {"query", "max_price", "results":[{sku, name, price, currency, score,
 *               category, brand, in_stock, exact_sku}]}
 * user is the customer's WhatsApp id (digits), prices are decimal numbers in
 * the currency's major unit, times are ISO 8601 UTC. */
#include "cli.h"
#include "souk/catalog.h"
#include "souk/error.h"
#include "souk/nlu.h"
#include "souk/search.h"
#include "souk/store.h"
#include "souk/twilio.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JSON_OUT_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))
#define SEARCH_LIMIT_DEFAULT 10

/* ---- shared helpers ------------------------------------------------------- */

static bool s_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return true;
    return false;
}

/* Every argument is one of the flags given (NULL-terminated). */
static bool s_only_flags(int argc, char **argv, const char *const *flags)
{
    for (int i = 1; i < argc; i++) {
        bool known = false;
        for (const char *const *f = flags; *f && !known; f++)
            known = strcmp(argv[i], *f) == 0;
        if (!known)
            return false;
    }
    return true;
}

static store_t *s_store_open(const souk_config_t *cfg, const char *cmd)
{
    store_t *store = NULL;
    char err[512];
    if (store_open(cfg->store, cfg->store_dir, NULL, &store, err, sizeof err) != SOUK_OK)
        fprintf(stderr, "souk %s: cannot open the store: %s\n", cmd, err);
    return store;
}

static const char *s_iso(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static json_t *s_json_time(int64_t ms)
{
    char buf[32];
    return json_string(s_iso(ms, buf, sizeof buf));
}

static json_t *s_json_money(int64_t cents)
{
    return json_real((double)cents / 100.0);
}

static const char *s_money(int64_t cents, const char *currency, char *buf, size_t len)
{
    snprintf(buf, len, "%lld.%02lld %s", (long long)(cents / 100), (long long)(cents % 100),
             currency ? currency : "");
    return buf;
}

static const char *s_masked(const char *waid, char *buf, size_t len)
{
    char full[64];
    snprintf(full, sizeof full, "+%s", waid ? waid : "");
    twilio_mask_phone(full, buf, len);
    return buf;
}

/* Prints s in a column of width characters (UTF-8 code points): cut with
 * "~" when longer, padded when shorter; right-aligned when right. */
static void s_cell(const char *s, int width, bool right, const char *after)
{
    s = s ? s : "-";
    int chars = 0;
    size_t bytes = 0, cut = 0;
    for (; s[bytes]; bytes++) {
        if (((unsigned char)s[bytes] & 0xc0) == 0x80)
            continue;
        if (chars == width - 1)
            cut = bytes;
        chars++;
    }
    if (chars > width) {
        printf("%.*s~%s", (int)cut, s, after);
        return;
    }
    if (right)
        printf("%*s%s%s", width - chars, "", s, after);
    else if (strchr(after, '\n'))
        printf("%s%s", s, after);           /* the last column needs no padding */
    else
        printf("%s%*s%s", s, width - chars, "", after);
}

/* Prints doc on stdout as one line: 0, or 1 when it cannot. */
static int s_print_json(json_t *doc)
{
    int rc = doc && json_dumpf(doc, stdout, JSON_OUT_FLAGS) == 0 ? 0 : 1;
    putchar('\n');
    json_decref(doc);
    return rc;
}

/* Parses JSON text from the store, or returns fallback. */
static json_t *s_json_text(const char *text, json_t *fallback)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    if (v) {
        json_decref(fallback);
        return v;
    }
    return fallback;
}

/* Appends o (taking it) to the array: 0, or SOUK_ENOMEM. */
static int s_append(json_t *items, json_t *o)
{
    return o && json_array_append_new(items, o) == 0 ? 0 : SOUK_ENOMEM;
}

/* ---- products -------------------------------------------------------------- */

static json_t *s_product_json(const store_product_t *p)
{
    return json_pack("{s:s, s:s, s:s?, s:o, s:I, s:s, s:s?, s:I, s:s?, s:s?, s:o, s:o, s:o}",
                     "sku", p->sku, "name", p->name, "description", p->description,
                     "price", s_json_money(p->price_cents), "price_cents", (json_int_t)p->price_cents,
                     "currency", p->currency, "category", p->category,
                     "stock", (json_int_t)p->stock, "image_url", p->image_url, "brand", p->brand,
                     "tags", s_json_text(p->tags, json_array()),
                     "attrs", s_json_text(p->attrs, json_object()),
                     "updated", s_json_time(p->updated_ms));
}

static int s_collect_product(const store_product_t *p, void *items)
{
    return s_append(items, s_product_json(p));
}

static int s_by_sku(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "sku")),
                  json_string_value(json_object_get(*(json_t *const *)b, "sku")));
}

/* Sorts a JSON array of objects by their "sku". */
static void s_sort_by_sku(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, s_by_sku);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
}

static void s_products_table(json_t *items)
{
    printf("%-20s %-40s %14s %8s  %s\n", "SKU", "NAME", "PRICE", "STOCK", "CATEGORY");
    size_t i;
    json_t *p;
    json_array_foreach(items, i, p) {
        char money[48];
        s_cell(json_string_value(json_object_get(p, "sku")), 20, false, " ");
        s_cell(json_string_value(json_object_get(p, "name")), 40, false, " ");
        s_cell(s_money(json_integer_value(json_object_get(p, "price_cents")),
                       json_string_value(json_object_get(p, "currency")), money, sizeof money),
               14, true, " ");
        printf("%8lld  ", (long long)json_integer_value(json_object_get(p, "stock")));
        s_cell(json_string_value(json_object_get(p, "category")), 24, false, "\n");
    }
    printf("%zu product%s\n", json_array_size(items), json_array_size(items) == 1 ? "" : "s");
}

int cli_products(souk_config_t *cfg, int argc, char **argv)
{
    static const char *const flags[] = { "--json", "--count", NULL };
    if (!s_only_flags(argc, argv, flags)) {
        fprintf(stderr, "usage: souk products [--json] [--count]\n");
        return 2;
    }
    store_t *store = s_store_open(cfg, "products");
    if (!store)
        return 1;
    int rc = 1;
    if (s_flag(argc, argv, "--count")) {
        int64_t n = 0;
        if (store_product_count(store, &n) == SOUK_OK) {
            printf("%lld\n", (long long)n);
            rc = 0;
        }
    } else {
        json_t *items = json_array();
        if (items && store_product_each(store, s_collect_product, items) == SOUK_OK) {
            s_sort_by_sku(items);
            if (s_flag(argc, argv, "--json")) {
                rc = s_print_json(json_pack("{s:O}", "products", items));
            } else {
                s_products_table(items);
                rc = 0;
            }
        }
        json_decref(items);
    }
    if (rc)
        fprintf(stderr, "souk products: %s\n", store_last_error(store));
    store_close(&store);
    return rc;
}

/* ---- orders ------------------------------------------------------------------ */

/* The store keeps items as [{sku, name, qty, unit_cents}]. */
static json_t *s_order_items(const char *stored)
{
    json_t *in = s_json_text(stored, json_array()), *out = json_array(), *it;
    size_t i;
    json_array_foreach(in, i, it) {
        json_t *o = json_pack("{s:O?, s:O?, s:O?, s:o}", "sku", json_object_get(it, "sku"),
                              "quantity", json_object_get(it, "qty"),
                              "name", json_object_get(it, "name"),
                              "unit_price",
                              s_json_money(json_integer_value(json_object_get(it, "unit_cents"))));
        if (o)
            json_array_append_new(out, o);
    }
    json_decref(in);
    return out;
}

static json_t *s_order_json(const store_order_t *o)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:I, s:s, s:s, s:s?, s:o, s:o}",
                     "id", o->order_id, "user", o->waid, "items", s_order_items(o->items),
                     "total", s_json_money(o->total_cents), "total_cents", (json_int_t)o->total_cents,
                     "currency", o->currency, "status", store_order_status_name(o->status),
                     "note", o->note, "created", s_json_time(o->created_ms),
                     "updated", s_json_time(o->updated_ms));
}

static void s_orders_table(json_t *orders)
{
    printf("%-9s %-20s %-16s %-36s %14s  %s\n", "ID", "CREATED", "USER", "ITEMS", "TOTAL",
           "STATUS");
    size_t i, k;
    json_t *o, *it;
    json_array_foreach(orders, i, o) {
        char user[64], money[48], items[512] = "";
        size_t len = 0;
        json_array_foreach(json_object_get(o, "items"), k, it)
            if (len < sizeof items)
                len += (size_t)snprintf(items + len, sizeof items - len, "%s%lld x %s",
                                        k ? ", " : "",
                                        (long long)json_integer_value(json_object_get(it, "quantity")),
                                        json_string_value(json_object_get(it, "sku")));
        s_cell(json_string_value(json_object_get(o, "id")), 9, false, " ");
        s_cell(json_string_value(json_object_get(o, "created")), 20, false, " ");
        s_cell(s_masked(json_string_value(json_object_get(o, "user")), user, sizeof user), 16,
               false, " ");
        s_cell(items, 36, false, " ");
        s_cell(s_money(json_integer_value(json_object_get(o, "total_cents")),
                       json_string_value(json_object_get(o, "currency")), money, sizeof money),
               14, true, "  ");
        printf("%s\n", json_string_value(json_object_get(o, "status")));
    }
    printf("%zu order%s\n", json_array_size(orders), json_array_size(orders) == 1 ? "" : "s");
}

/* ---- tickets ------------------------------------------------------------------- */

static json_t *s_ticket_json(const store_ticket_t *t)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:o, s:o}",
                     "id", t->ticket_id, "user", t->waid, "subject", t->subject,
                     "message", t->message, "order_id", t->order_id,
                     "status", store_ticket_status_name(t->status),
                     "created", s_json_time(t->created_ms), "updated", s_json_time(t->updated_ms));
}

static void s_tickets_table(json_t *tickets)
{
    printf("%-9s %-20s %-16s %-7s %-9s %s\n", "ID", "CREATED", "USER", "STATUS", "ORDER",
           "SUBJECT");
    size_t i;
    json_t *t;
    json_array_foreach(tickets, i, t) {
        char user[64];
        s_cell(json_string_value(json_object_get(t, "id")), 9, false, " ");
        s_cell(json_string_value(json_object_get(t, "created")), 20, false, " ");
        s_cell(s_masked(json_string_value(json_object_get(t, "user")), user, sizeof user), 16,
               false, " ");
        s_cell(json_string_value(json_object_get(t, "status")), 7, false, " ");
        s_cell(json_string_value(json_object_get(t, "order_id")), 9, false, " ");
        s_cell(json_string_value(json_object_get(t, "subject")), 60, false, "\n");
    }
    printf("%zu ticket%s\n", json_array_size(tickets), json_array_size(tickets) == 1 ? "" : "s");
}

/* orders and tickets: list everything, then print a table or {key: [...]}. */
typedef int (*list_all_fn)(store_t *store, json_t *items);

static int s_collect_order(const store_order_t *o, void *items)
{
    return s_append(items, s_order_json(o));
}

static int s_collect_ticket(const store_ticket_t *t, void *items)
{
    return s_append(items, s_ticket_json(t));
}

static int s_list_orders(store_t *store, json_t *items)
{
    return store_order_list_all(store, s_collect_order, items);
}

static int s_list_tickets(store_t *store, json_t *items)
{
    return store_ticket_list_all(store, s_collect_ticket, items);
}

static int s_list_command(souk_config_t *cfg, int argc, char **argv, const char *key,
                          list_all_fn list, void (*table)(json_t *))
{
    static const char *const flags[] = { "--json", NULL };
    if (!s_only_flags(argc, argv, flags)) {
        fprintf(stderr, "usage: souk %s [--json]\n", key);
        return 2;
    }
    store_t *store = s_store_open(cfg, key);
    if (!store)
        return 1;
    json_t *items = json_array();
    int rc = 1;
    if (items && list(store, items) == SOUK_OK) {
        if (s_flag(argc, argv, "--json")) {
            rc = s_print_json(json_pack("{s:O}", key, items));
        } else {
            table(items);
            rc = 0;
        }
    } else {
        fprintf(stderr, "souk %s: %s\n", key, store_last_error(store));
    }
    json_decref(items);
    store_close(&store);
    return rc;
}

int cli_orders(souk_config_t *cfg, int argc, char **argv)
{
    return s_list_command(cfg, argc, argv, "orders", s_list_orders, s_orders_table);
}

int cli_tickets(souk_config_t *cfg, int argc, char **argv)
{
    return s_list_command(cfg, argc, argv, "tickets", s_list_tickets, s_tickets_table);
}

/* ---- search ---------------------------------------------------------------------- */

typedef struct {
    char query[1024];
    int limit;
    bool json;
    search_filters_t f;
} search_args_t;

static int s_search_args(int argc, char **argv, search_args_t *a)
{
    *a = (search_args_t) { .limit = SEARCH_LIMIT_DEFAULT };
    size_t len = 0;
    char why[128];
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--json") == 0) {
            a->json = true;
        } else if (strcmp(argv[i], "--in-stock") == 0) {
            a->f.in_stock_only = true;
        } else if (strcmp(argv[i], "--limit") == 0 && v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > SEARCH_LIMIT_MAX)
                return SOUK_EINVAL;
            a->limit = (int)n;
            i++;
        } else if (strcmp(argv[i], "--category") == 0 && v) {
            a->f.category = v;
            i++;
        } else if (strcmp(argv[i], "--max-price") == 0 && v) {
            if (catalog_parse_price(v, &a->f.max_price_cents, why, sizeof why) != SOUK_OK)
                return SOUK_EINVAL;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return SOUK_EINVAL;
        } else if (len + strlen(argv[i]) + 2 < sizeof a->query) {
            len += (size_t)snprintf(a->query + len, sizeof a->query - len, "%s%s",
                                    len ? " " : "", argv[i]);
        }
    }
    return len ? SOUK_OK : SOUK_EINVAL;
}

static json_t *s_hits_json(const search_args_t *a, const search_t *s, const search_hit_t *hits,
                           int n)
{
    json_t *results = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(results,
            json_pack("{s:s, s:s, s:o, s:s, s:f, s:s, s:s, s:b, s:b}",
                      "sku", hits[i].sku, "name", hits[i].name,
                      "price", s_json_money(hits[i].price_cents), "currency", hits[i].currency,
                      "score", round((double)hits[i].score * 1e4) / 1e4, "category", hits[i].category,
                      "brand", hits[i].brand, "in_stock", hits[i].in_stock,
                      "exact_sku", hits[i].exact_sku));
    const search_info_t *info = s ? search_last_info(s) : NULL;
    json_t *max = info && info->max_price_cents ? s_json_money(info->max_price_cents) : json_null();
    return json_pack("{s:s, s:o, s:o}", "query", a->query, "max_price", max, "results", results);
}

static void s_hits_table(const search_hit_t *hits, int n)
{
    printf("%3s %-20s %-40s %14s %6s\n", "#", "SKU", "NAME", "PRICE", "SCORE");
    for (int i = 0; i < n; i++) {
        char money[48];
        printf("%3d ", i + 1);
        s_cell(hits[i].sku, 20, false, " ");
        s_cell(hits[i].name, 40, false, " ");
        s_cell(s_money(hits[i].price_cents, hits[i].currency, money, sizeof money), 14, true, " ");
        printf("%6.3f%s\n", (double)hits[i].score, hits[i].in_stock ? "" : "  (out of stock)");
    }
    if (n == 0)
        printf("no products found\n");
}

int cli_search(souk_config_t *cfg, int argc, char **argv)
{
    search_args_t a;
    if (s_search_args(argc, argv, &a) != SOUK_OK) {
        fprintf(stderr, "usage: souk search QUERY [--limit 1..%d] [--json] [--category C]"
                        " [--max-price P] [--in-stock]\n", SEARCH_LIMIT_MAX);
        return 2;
    }
    search_t *s = NULL;
    search_hit_t hits[SEARCH_LIMIT_MAX];
    int n = 0, rc = 0;
    char err[512];
    int r = search_open(cfg->data_dir, NULL, &s, err, sizeof err);
    if (r == SOUK_OK)
        r = search_query(s, a.query, &a.f, a.limit, hits, &n);
    if (r == SOUK_EUNAVAIL) {
        fprintf(stderr, "souk search: no search index yet: `souk import FILE` builds it\n");
        n = 0;
    } else if (r != SOUK_OK) {
        fprintf(stderr, "souk search: %s\n", s ? search_last_error(s) : err);
        rc = 1;
    }
    if (rc == 0 && a.json)
        rc = s_print_json(s_hits_json(&a, s, hits, n));
    else if (rc == 0)
        s_hits_table(hits, n);
    search_close(&s);
    return rc;
}

/* ---- understand ---------------------------------------------------------------------- */

int cli_understand(souk_config_t *cfg, int argc, char **argv)
{
    (void)cfg;
    char text[NLU_TEXT_MAX + 1] = "";
    size_t len = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (len < sizeof text - 1)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", len ? " " : "", argv[i]);
    }
    if (len >= sizeof text)
        len = sizeof text - 1;
    if (!len) {
        fprintf(stderr, "usage: souk understand TEXT [--json]\n");
        return 2;
    }
    int rc = nlu_print_understanding(text, json, stdout);
    if (rc != SOUK_OK)
        fprintf(stderr, "souk understand: %s\n", souk_strerror(rc));
    return rc == SOUK_OK ? 0 : 1;
}
