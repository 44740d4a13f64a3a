/* Search: the local embedder's meaning (synonyms, typos, descriptions), the
 * index file (filters, SKU lookup, atomic rebuild seen by an open reader,
 * corrupt and truncated files refused, a foreign embedder refused, an empty
 * catalogue), price words, and realistic queries over the demo catalogue
 * (../shared/data/dummyjson-products.json; skipped when it is absent).
 *
 * With SEARCH_TEST_VECTOR=pinecone (the `search_pinecone` test) the same
 * tests run with SOUK_VECTOR=pinecone against tests/fakes/pinecone_fake.py,
 * a local fake of Pinecone's cloud data-plane API that follows its
 * documented request and response shapes (there is no local Pinecone); each
 * index file gets its own namespace. Then tests of the Pinecone store alone
 * follow: upsert batching, metadata filters, vanished products deleted, a
 * namespace built by another embedder refused, retries on 429/5xx, a
 * malformed response and a wrong API key refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "souk/error.h"
#include "souk/pinecone.h"
#include "souk/search.h"
#include "souk/vindex.h"
#include "souk/vstore.h"
#include "pinecone_ctl.h"

#ifndef SOUK_SRC_DIR
#define SOUK_SRC_DIR "."
#endif

static char s_dir[256];
static bool s_pinecone;            /* SOUK_VECTOR=pinecone, against the fake */

/* Each index file its own Pinecone namespace (its file name), as each shop
 * has its own. */
static void use_namespace(const char *path)
{
    char copy[512];
    snprintf(copy, sizeof copy, "%s", path);
    if (s_pinecone)
        setenv("SOUK_PINECONE_NAMESPACE", basename(copy), 1);
}

/* ---- catalogues ------------------------------------------------------------- */

typedef struct {
    store_product_t *rows;
    size_t n;
} catalogue_t;

static int each_row(void *src, store_product_cb cb, void *arg)
{
    const catalogue_t *c = src;
    for (size_t i = 0; i < c->n; i++) {
        int rc = cb(&c->rows[i], arg);
        if (rc)
            return rc < 0 ? rc : 0;
    }
    return 0;
}

#define P(sku_, name_, cat_, brand_, desc_, cents_, stock_)                  \
    { .sku = sku_, .name = name_, .category = cat_, .brand = brand_,         \
      .description = desc_, .price_cents = cents_, .stock = stock_, .currency = "EUR" }

static store_product_t s_small[] = {
    P("SHO-1", "Nike Air Sneakers", "shoes", "Nike",
      "Comfortable everyday sneakers with air cushioning and a breathable mesh upper.", 8999, 5),
    P("SHO-2", "Leather Oxford", "shoes", "Clarks",
      "A formal leather dress shoe with a polished toe, for the office.", 12000, 3),
    P("BEA-1", "Essence Mascara Lash Princess", "beauty", "Essence",
      "A volumizing mascara for long, dramatic lashes.", 999, 10),
    P("BEA-2", "Red Lipstick", "beauty", "Chic Cosmetics",
      "A classic bold red with a creamy matte finish.", 1299, 8),
    P("PHO-1", "Apple iPhone 13 Pro", "smartphones", "Apple",
      "Flagship with a triple camera system and a ProMotion display.", 99900, 2),
    P("PHO-2", "Samsung Galaxy S10", "smartphones", "Samsung",
      "Dynamic AMOLED display, wireless power share and a fast processor.", 69900, 0),
    P("JAC-1", "Trail Jacket", "clothing", "Outdoor Co",
      "A light shell that is fully waterproof, for hiking in the rain.", 4999, 7),
    P("JAC-2", "Denim Jacket", "clothing", "Levis",
      "Classic blue denim with brass buttons and a relaxed fit.", 3999, 4),
    P("FUR-1", "Oak Dining Chair", "furniture", "Woodworks",
      "Solid oak with a curved backrest for long dinners.", 15000, 6),
    P("KIT-1", "Carbon Steel Wok", "kitchen", NULL,
      "Heats fast and evenly for stir-frying.", 2999, 9),
    P("LAP-1", "Lenovo Yoga 920", "laptops", "Lenovo",
      "A 2-in-1 convertible laptop with a flexible hinge and a touch screen.", 109999, 4),
    P("MUG-1", "Ceramic Coffee Mug", "kitchen", NULL,
      "Holds 350 ml of coffee or tea; dishwasher safe.", 899, 30),
};
#define SMALL_N (sizeof s_small / sizeof s_small[0])

static catalogue_t s_small_cat = { s_small, SMALL_N };

/* The demo catalogue, read with jansson the way an import would map it. */
static catalogue_t s_demo;
static json_t *s_demo_json;

static char *dup_or_null(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static void load_demo(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/../shared/data/dummyjson-products.json", SOUK_SRC_DIR);
    s_demo_json = json_load_file(path, 0, NULL);
    if (!json_is_array(s_demo_json))
        return;
    s_demo.n = json_array_size(s_demo_json);
    s_demo.rows = calloc(s_demo.n, sizeof *s_demo.rows);
    for (size_t i = 0; i < s_demo.n; i++) {
        json_t *o = json_array_get(s_demo_json, i);
        store_product_t *p = &s_demo.rows[i];
        p->sku = dup_or_null(json_object_get(o, "sku"));
        p->name = dup_or_null(json_object_get(o, "title"));
        p->description = dup_or_null(json_object_get(o, "description"));
        p->category = dup_or_null(json_object_get(o, "category"));
        p->brand = dup_or_null(json_object_get(o, "brand"));
        p->currency = strdup("USD");
        p->price_cents = (int64_t)llround(json_number_value(json_object_get(o, "price")) * 100);
        p->stock = json_integer_value(json_object_get(o, "stock"));
        p->tags = json_dumps(json_object_get(o, "tags"), JSON_COMPACT);
        json_t *attrs = json_object();
        const char *keys[] = { "warrantyInformation", "shippingInformation", "returnPolicy" };
        for (size_t k = 0; k < 3; k++)
            if (json_object_get(o, keys[k]))
                json_object_set(attrs, keys[k], json_object_get(o, keys[k]));
        p->attrs = json_dumps(attrs, JSON_COMPACT);
        json_decref(attrs);
    }
}

/* ---- helpers ---------------------------------------------------------------- */

static void path_of(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", s_dir, name);
}

static void build(const char *path, catalogue_t *c, const char *spec)
{
    use_namespace(path);
    embedder_t *e;
    char err[512] = "";
    assert_int_equal(embed_new(spec, &e, err, sizeof err), SOUK_OK);
    search_build_stats_t st;
    int rc = search_build(path, e, each_row, c, &st, err, sizeof err);
    if (rc != SOUK_OK)
        fail_msg("build: %s", err);
    assert_int_equal(st.products, c->n);
    embed_destroy(&e);
}

static search_t *open_search(const char *path, const char *spec)
{
    use_namespace(path);
    embedder_t *e;
    search_t *s;
    char err[512] = "";
    assert_int_equal(embed_new(spec, &e, err, sizeof err), SOUK_OK);
    int rc = search_open_index(path, e, &s, err, sizeof err);
    if (rc != SOUK_OK)
        fail_msg("open: %s", err);
    return s;
}

static int query(search_t *s, const char *text, const search_filters_t *f, search_hit_t *hits,
                 int limit)
{
    int n = -1;
    int rc = search_query(s, text, f, limit, hits, &n);
    if (rc != SOUK_OK)
        fail_msg("query '%s': %s (%s)", text, souk_errname(rc), search_last_error(s));
    if (getenv("SEARCH_TEST_VERBOSE")) {
        printf("# %s ->", text);
        for (int i = 0; i < n; i++)
            printf(" [%s %.3f %s]", hits[i].sku, hits[i].score, hits[i].name);
        printf("\n");
    }
    return n;
}

/* Rank (0-based) of sku among the hits, -1 if absent. */
static int rank_of(const search_hit_t *hits, int n, const char *sku)
{
    for (int i = 0; i < n; i++)
        if (strcmp(hits[i].sku, sku) == 0)
            return i;
    return -1;
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, a)) > 0)
        assert_int_equal(fwrite(buf, 1, r, b), r);
    fclose(a);
    fclose(b);
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static void flip_byte(const char *path, long at)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

/* ---- price words ---------------------------------------------------------------- */

static void test_price_words(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int found;
        int64_t cents;
        const char *rest;
    } cases[] = {
        { "running shoes under 20 dollars", 1, 1999, "running shoes" },
        { "below $50", 1, 4999, "" },
        { "phones less than 30", 1, 2999, "phones" },
        { "something cheaper than 10 euros please", 1, 999, "something please" },
        { "max 100", 1, 10000, "" },
        { "a dress, max. 45.50", 1, 4550, "a dress" },
        { "lipstick up to €15", 1, 1500, "lipstick" },
        { "laptop at most 1,299.99", 1, 129999, "laptop" },
        { "sofa no more than 2k", 1, 200000, "sofa" },
        { "mascara for 10 bucks or less", 1, 1000, "mascara for" },
        { "watch £200 max", 1, 20000, "watch" },
        { "perfume within 80 usd", 1, 8000, "perfume" },
        { "shirt under 19,99", 1, 1998, "shirt" },
        { "Under Armour hoodie", 0, 0, "Under Armour hoodie" },
        { "iPhone 13 Pro Max", 0, 0, "iPhone 13 Pro Max" },
        { "128gb under the bed storage", 0, 0, "128gb under the bed storage" },
        { "2x red lipstick", 0, 0, "2x red lipstick" },
        { "", 0, 0, "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t cents = -1;
        char rest[256];
        int rc = search_parse_price_limit(cases[i].text, &cents, rest, sizeof rest);
        if (rc != cases[i].found)
            fail_msg("'%s': found %d", cases[i].text, rc);
        if (rc == 1 && cents != cases[i].cents)
            fail_msg("'%s': %lld cents", cases[i].text, (long long)cents);
        if (strcmp(rest, cases[i].rest) != 0)
            fail_msg("'%s': rest '%s'", cases[i].text, rest);
    }
    int64_t c;
    assert_int_equal(search_parse_price_limit(NULL, &c, NULL, 0), SOUK_EINVAL);
}

/* ---- meaning ----------------------------------------------------------------- */

static search_t *s_small_search;

static int setup_small(void **state)
{
    (void)state;
    char path[512];
    path_of("small.vindex", path, sizeof path);
    build(path, &s_small_cat, "local");
    s_small_search = open_search(path, "local");
    return 0;
}

static int teardown_small(void **state)
{
    (void)state;
    search_close(&s_small_search);
    return 0;
}

static void test_synonym_running_shoes(void **state)
{
    (void)state;
    search_hit_t h[5];
    int n = query(s_small_search, "running shoes", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "SHO-1"), 0);
    n = query(s_small_search, "trainers", NULL, h, 3);
    assert_int_equal(rank_of(h, n, "SHO-1"), 0);
    n = query(s_small_search, "notebook computer", NULL, h, 3);
    assert_int_equal(rank_of(h, n, "LAP-1"), 0);
    n = query(s_small_search, "a seat", NULL, h, 3);
    assert_int_equal(rank_of(h, n, "FUR-1"), 0);
}

static void test_typos(void **state)
{
    (void)state;
    search_hit_t h[5];
    int n = query(s_small_search, "mascra", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "BEA-1"), 0);
    n = query(s_small_search, "iphon", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "PHO-1"), 0);
    n = query(s_small_search, "lipstik", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "BEA-2"), 0);
    n = query(s_small_search, "samsng galaxy", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "PHO-2"), 0);
}

static void test_description_only(void **state)
{
    (void)state;
    search_hit_t h[5];
    int n = query(s_small_search, "waterproof", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "JAC-1"), 0);
    n = query(s_small_search, "something for hiking in the rain", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "JAC-1"), 0);
    n = query(s_small_search, "dishwasher safe", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "MUG-1"), 0);
}

/* Free attributes (colour, warranty...) are searchable, even when they are
 * all that tells products apart. */
static void test_attribute_only(void **state)
{
    (void)state;
    store_product_t rows[] = {
        P("MUG-1", "Mug, blue", "kitchen", "Acme", "A blue ceramic mug.", 999, 10),
        P("LAMP-2", "Desk lamp", "home", "Lumo", "A warm LED desk lamp", 2450, 3),
        P("TEE-3", "Cotton tee", "clothing", NULL, "Soft cotton t-shirt", 1500, 0),
    };
    rows[0].attrs = "{\"colour\":\"blue\",\"warranty\":\"2 years\"}";
    rows[1].attrs = "{\"colour\":\"white\"}";
    rows[2].attrs = "{\"colour\":\"black\"}";
    catalogue_t c = { rows, 3 };
    char path[512];
    path_of("attrs.vindex", path, sizeof path);
    build(path, &c, "local");
    search_t *s = open_search(path, "local");
    search_hit_t h[3];
    int n = query(s, "white", NULL, h, 3);
    assert_int_equal(rank_of(h, n, "LAMP-2"), 0);
    n = query(s, "black", NULL, h, 3);
    assert_int_equal(rank_of(h, n, "TEE-3"), 0);
    n = query(s, "2 years warranty", NULL, h, 3);
    assert_int_equal(rank_of(h, n, "MUG-1"), 0);
    search_close(&s);
}

static void test_filters(void **state)
{
    (void)state;
    search_hit_t h[20];
    search_filters_t f = { .category = "smartphones" };
    int n = query(s_small_search, "phone", &f, h, 20);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++)
        assert_string_equal(h[i].category, "smartphones");
    f = (search_filters_t){ .category = "Smartphones", .in_stock_only = true };
    n = query(s_small_search, "phone", &f, h, 20);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].sku, "PHO-1");
    f = (search_filters_t){ .max_price_cents = 5000 };
    n = query(s_small_search, "jacket", &f, h, 20);
    assert_true(n >= 2);
    for (int i = 0; i < n; i++)
        assert_true(h[i].price_cents <= 5000);
    f = (search_filters_t){ .category = "no such category" };
    n = query(s_small_search, "jacket", &f, h, 20);
    assert_int_equal(n, 0);
    /* price words in the text become the same filter */
    n = query(s_small_search, "shoes under 100 euros", NULL, h, 20);
    assert_true(n >= 1);
    assert_string_equal(h[0].sku, "SHO-1");
    for (int i = 0; i < n; i++)
        assert_true(h[i].price_cents < 10000);
    assert_int_equal(search_last_info(s_small_search)->max_price_cents, 9999);
    assert_string_equal(search_last_info(s_small_search)->semantic_text, "shoes");
    /* price words alone list what fits */
    n = query(s_small_search, "anything below 10 euros", NULL, h, 20);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++)
        assert_true(h[i].price_cents < 1000);
}

static void test_sku_first(void **state)
{
    (void)state;
    search_hit_t h[5];
    int n = query(s_small_search, "bea-2", NULL, h, 5);
    assert_true(n >= 1);
    assert_string_equal(h[0].sku, "BEA-2");
    assert_true(h[0].exact_sku);
    n = query(s_small_search, "do you have JAC-2 in black?", NULL, h, 5);
    assert_true(n >= 2);
    assert_string_equal(h[0].sku, "JAC-2");
    assert_int_equal(rank_of(h + 1, n - 1, "JAC-2"), -1);     /* not twice */
    assert_string_equal(h[0].name, "Denim Jacket");
    assert_int_equal(h[0].price_cents, 3999);
    assert_string_equal(h[0].currency, "EUR");
}

static void test_brand_boost(void **state)
{
    (void)state;
    search_hit_t h[5];
    int n = query(s_small_search, "lenovo", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "LAP-1"), 0);
    n = query(s_small_search, "samsung phone", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "PHO-2"), 0);
}

/* ---- the index file ------------------------------------------------------------ */

static void test_mismatched_embedder_refused(void **state)
{
    (void)state;
    char path[512];
    path_of("small.vindex", path, sizeof path);
    search_t *s = open_search(path, "local:256");
    search_hit_t h[5];
    int n;
    assert_int_equal(search_query(s, "shoes", NULL, 5, h, &n), SOUK_ECONFIG);
    assert_int_equal(n, 0);
    assert_non_null(strstr(search_last_error(s), "refused"));
    assert_non_null(strstr(search_last_error(s), "local/384/"));
    search_close(&s);

    /* the index itself refuses a vector from another embedder */
    vindex_t *vx;
    char err[512];
    assert_int_equal(vindex_open(path, 0, &vx, err, sizeof err), SOUK_OK);
    embed_id_t other = { .name = "openai", .dim = 384, .params_hash = 42 };
    float vec[384] = { 1.0f };
    vindex_hit_t hits[3];
    assert_int_equal(vindex_query(vx, &other, vec, NULL, 3, hits, &n, err, sizeof err),
                     SOUK_ECONFIG);
    assert_non_null(strstr(err, "openai/384/"));
    vindex_close(&vx);
}

static void test_rebuild_seen_by_open_reader(void **state)
{
    (void)state;
    char path[512];
    path_of("live.vindex", path, sizeof path);
    unlink(path);
    search_t *s = open_search(path, "local");
    search_hit_t h[5];
    int n;
    /* no index yet: unavailable, not fatal */
    assert_int_equal(search_query(s, "wok", NULL, 5, h, &n), SOUK_EUNAVAIL);

    catalogue_t first = { s_small, 10 };      /* up to the wok */
    build(path, &first, "local");
    n = query(s, "wok", NULL, h, 5);
    assert_string_equal(h[0].sku, "KIT-1");
    uint64_t gen = search_last_info(s)->index_generation;

    store_product_t next[] = {
        P("KIT-2", "Cast Iron Skillet", "kitchen", NULL, "Seasoned and oven safe.", 3499, 3),
        s_small[0], s_small[2],
    };
    catalogue_t second = { next, 3 };
    build(path, &second, "local");
    n = query(s, "skillet", NULL, h, 5);
    assert_string_equal(h[0].sku, "KIT-2");
    assert_int_equal(search_last_info(s)->index_generation, gen + 1);
    n = query(s, "KIT-1", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "KIT-1"), -1);  /* gone with the old catalogue */

    /* a replacement that does not verify is refused; the reader keeps the
     * index it has */
    char bad[512];
    path_of("bad.tmp", bad, sizeof bad);
    copy_file(path, bad);
    flip_byte(bad, file_size(bad) / 2);
    assert_int_equal(rename(bad, path), 0);
    n = query(s, "skillet", NULL, h, 5);
    assert_string_equal(h[0].sku, "KIT-2");
    search_close(&s);
}

static void expect_refused(const char *path, const char *why)
{
    vindex_t *vx = NULL;
    char err[512] = "";
    int rc = vindex_open(path, 0, &vx, err, sizeof err);
    assert_int_equal(rc, SOUK_EPROTO);
    assert_null(vx);
    if (!strstr(err, why))
        fail_msg("expected '%s' in: %s", why, err);
    search_t *s;
    embedder_t *e;
    assert_int_equal(embed_new("local", &e, NULL, 0), SOUK_OK);
    assert_int_equal(search_open_index(path, e, &s, err, sizeof err), SOUK_EPROTO);
}

static void test_corrupt_and_truncated_refused(void **state)
{
    (void)state;
    char good[512], path[512];
    path_of("small.vindex", good, sizeof good);
    path_of("broken.vindex", path, sizeof path);
    long size = file_size(good);

    copy_file(good, path);
    assert_int_equal(truncate(path, size / 2), 0);
    expect_refused(path, "truncated");

    assert_int_equal(truncate(path, 100), 0);
    expect_refused(path, "truncated");

    copy_file(good, path);
    flip_byte(path, 4096 + 10);                    /* a vector byte */
    expect_refused(path, "checksum");

    copy_file(good, path);
    flip_byte(path, size - 3);                     /* the embedder state */
    expect_refused(path, "checksum");

    copy_file(good, path);
    flip_byte(path, 40);                           /* the header */
    expect_refused(path, "header");

    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 9000; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    expect_refused(path, "not a souk product index");

    /* any byte changed anywhere is refused, never read */
    for (long at = 0; at < size; at += 997) {
        copy_file(good, path);
        flip_byte(path, at);
        vindex_t *vx = NULL;
        assert_int_equal(vindex_open(path, 0, &vx, NULL, 0), SOUK_EPROTO);
    }

    copy_file(good, path);
    FILE *g = fopen(path, "ab");
    fputs("tail", g);
    fclose(g);
    expect_refused(path, "trailing");

    vindex_t *vx;
    path_of("absent.vindex", path, sizeof path);
    assert_int_equal(vindex_open(path, 0, &vx, NULL, 0), SOUK_ENOTFOUND);
}

static void test_zero_products(void **state)
{
    (void)state;
    char path[512];
    path_of("empty.vindex", path, sizeof path);
    catalogue_t none = { NULL, 0 };
    build(path, &none, "local");
    search_t *s = open_search(path, "local");
    search_hit_t h[5];
    assert_int_equal(query(s, "anything at all", NULL, h, 5), 0);
    assert_int_equal(query(s, "SKU-1", NULL, h, 5), 0);
    search_filters_t f = { .max_price_cents = 100, .category = "x" };
    assert_int_equal(query(s, "under 5 dollars", &f, h, 5), 0);
    search_close(&s);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    search_hit_t h[2];
    int n;
    assert_int_equal(search_query(s_small_search, NULL, NULL, 2, h, &n), SOUK_EINVAL);
    assert_int_equal(search_query(s_small_search, "x", NULL, 0, h, &n), SOUK_EINVAL);
    assert_int_equal(search_query(s_small_search, "x", NULL, SEARCH_LIMIT_MAX + 1, h, &n),
                     SOUK_EINVAL);
    embedder_t *e;
    assert_int_equal(embed_new("word2vec", &e, NULL, 0), SOUK_EINVAL);
    assert_int_equal(embed_new("local:7", &e, NULL, 0), SOUK_EINVAL);
    /* the writer refuses rows it cannot index */
    vindex_writer_t *w;
    char path[512];
    path_of("refused.vindex", path, sizeof path);
    embed_id_t id = { .name = "local", .dim = 64, .params_hash = 1 };
    assert_int_equal(vindex_writer_new(path, &id, &w, NULL, 0), SOUK_OK);
    float vec[64] = { 0 };
    vindex_item_t item = { .sku = "A", .name = "a", .price_cents = -1 };
    assert_int_equal(vindex_writer_add(w, &item, vec), SOUK_EINVAL);
    item.price_cents = 1;
    vec[3] = NAN;
    assert_int_equal(vindex_writer_add(w, &item, vec), SOUK_EINVAL);
    vindex_writer_abort(&w);
    assert_int_equal(access(path, F_OK), -1);
    /* a build that cannot write says why and leaves nothing behind */
    embedder_t *le;
    char err[512] = "";
    assert_int_equal(embed_new("local", &le, NULL, 0), SOUK_OK);
    assert_int_equal(search_build("/nonexistent-dir/x.vindex", le, each_row, &s_small_cat, NULL,
                                  err, sizeof err),
                     SOUK_EIO);
    assert_non_null(strstr(err, "/nonexistent-dir/x.vindex"));
    embed_destroy(&le);
}

/* The widest vectors, all components equal: the int8 x int16 sums must not
 * overflow (a cloud embedder's 1536 or 3072 dimensions go through here). */
static void test_wide_vectors(void **state)
{
    (void)state;
    char path[512], err[512] = "";
    path_of("wide.vindex", path, sizeof path);
    embed_id_t id = { .name = "openai", .dim = EMBED_DIM_MAX, .params_hash = 7 };
    static float flat[EMBED_DIM_MAX], other[EMBED_DIM_MAX];
    for (int d = 0; d < EMBED_DIM_MAX; d++) {
        flat[d] = 1.0f / 64.0f;                    /* unit: 4096 * (1/64)^2 = 1 */
        other[d] = d % 2 ? flat[d] : -flat[d];      /* orthogonal to flat */
    }
    vindex_writer_t *w;
    assert_int_equal(vindex_writer_new(path, &id, &w, err, sizeof err), SOUK_OK);
    vindex_item_t a = { .sku = "A", .name = "flat", .price_cents = 1, .stock = 1 };
    vindex_item_t b = { .sku = "B", .name = "other", .price_cents = 1, .stock = 1 };
    assert_int_equal(vindex_writer_add(w, &a, flat), SOUK_OK);
    assert_int_equal(vindex_writer_add(w, &b, other), SOUK_OK);
    assert_int_equal(vindex_writer_commit(&w, err, sizeof err), SOUK_OK);
    vindex_t *vx;
    assert_int_equal(vindex_open(path, 0, &vx, err, sizeof err), SOUK_OK);
    vindex_hit_t hits[2];
    int n;
    assert_int_equal(vindex_query(vx, &id, flat, NULL, 2, hits, &n, err, sizeof err), SOUK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(hits[0].id, 0);
    assert_float_equal(hits[0].score, 1.0f, 0.01f);
    assert_float_equal(hits[1].score, 0.0f, 0.01f);
    vindex_close(&vx);
}

/* A shop's default Pinecone namespace: its name as a slug. */
static void test_default_namespace(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        { "Souk Demo Shop", "souk-demo-shop" }, { "  Caf\xc3\xa9 & Co. ", "caf-co" },
        { "ACME_42", "acme-42" }, { "", "souk" }, { "!!!", "souk" },
    };
    char ns[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vstore_default_namespace(cases[i][0], ns, sizeof ns);
        assert_string_equal(ns, cases[i][1]);
    }
}

/* ---- from the store, as souk import does it ---------------------------------------- */

static void test_build_from_store(void **state)
{
    (void)state;
    char data[512], err[512] = "";
    path_of("data", data, sizeof data);
    mkdir(data, 0700);
    use_namespace(data);
    store_t *st;
    if (store_open("sqlite", data, NULL, &st, err, sizeof err) != SOUK_OK)
        fail_msg("store: %s", err);
    size_t bad;
    assert_int_equal(store_product_upsert(st, s_small, SMALL_N, &bad), SOUK_OK);
    search_build_stats_t bs;
    if (search_build_index(st, data, NULL, &bs, err, sizeof err) != SOUK_OK)
        fail_msg("build: %s", err);
    assert_int_equal(bs.products, SMALL_N);
    store_close(&st);

    search_t *s;
    if (search_open(data, NULL, &s, err, sizeof err) != SOUK_OK)
        fail_msg("open: %s", err);
    search_hit_t h[3];
    int n = query(s, "waterproof jacket", NULL, h, 3);
    assert_true(n >= 1);
    assert_string_equal(h[0].sku, "JAC-1");
    assert_string_equal(h[0].currency, "EUR");
    search_close(&s);
}

/* ---- the demo catalogue ------------------------------------------------------------ */

static search_t *s_demo_search;

static int setup_demo(void **state)
{
    (void)state;
    load_demo();
    if (!s_demo.n)
        return 0;
    char path[512];
    path_of("demo.vindex", path, sizeof path);
    const char *spec = getenv("SEARCH_TEST_SPEC") ? getenv("SEARCH_TEST_SPEC") : "local";
    build(path, &s_demo, spec);
    s_demo_search = open_search(path, spec);
    return 0;
}

static int teardown_demo(void **state)
{
    (void)state;
    search_close(&s_demo_search);
    for (size_t i = 0; i < s_demo.n; i++) {
        free(s_demo.rows[i].tags);                 /* from json_dumps */
        s_demo.rows[i].tags = NULL;
        free(s_demo.rows[i].attrs);
        s_demo.rows[i].attrs = NULL;
        store_product_t *p = &s_demo.rows[i];
        free(p->sku);
        free(p->name);
        free(p->description);
        free(p->category);
        free(p->brand);
        free(p->currency);
    }
    free(s_demo.rows);
    json_decref(s_demo_json);
    return 0;
}

/* How many of the first k hits are in category. */
static int in_category(const search_hit_t *h, int n, int k, const char *category)
{
    int c = 0;
    for (int i = 0; i < n && i < k; i++)
        c += strcmp(h[i].category, category) == 0;
    return c;
}

static int name_has(const search_hit_t *h, int n, int k, const char *word)
{
    for (int i = 0; i < n && i < k; i++)
        if (strcasestr(h[i].name, word))
            return 1;
    return 0;
}

static void test_demo_queries(void **state)
{
    (void)state;
    if (!s_demo_search)
        skip();
    search_hit_t h[10];
    int n = query(s_demo_search, "lipstick", NULL, h, 5);
    assert_string_equal(h[0].name, "Red Lipstick");
    assert_true(in_category(h, n, 3, "beauty") >= 2);

    n = query(s_demo_search, "phone", NULL, h, 5);
    assert_true(in_category(h, n, 5, "smartphones") >= 3);

    n = query(s_demo_search, "something to sit on", NULL, h, 5);
    assert_true(in_category(h, n, 3, "furniture") >= 2);
    assert_true(name_has(h, n, 3, "chair") || name_has(h, n, 3, "sofa"));

    n = query(s_demo_search, "running shoes", NULL, h, 5);
    assert_true(name_has(h, n, 3, "sneakers") || name_has(h, n, 3, "trainers"));

    n = query(s_demo_search, "mascra", NULL, h, 5);
    assert_true(name_has(h, n, 1, "mascara"));

    n = query(s_demo_search, "iphon", NULL, h, 5);
    assert_true(name_has(h, n, 1, "iphone"));

    n = query(s_demo_search, "notebook computer", NULL, h, 5);
    assert_true(in_category(h, n, 3, "laptops") >= 2);

    n = query(s_demo_search, "perfume", NULL, h, 5);
    assert_true(in_category(h, n, 3, "fragrances") >= 2);

    n = query(s_demo_search, "wireless earphones under 100 dollars", NULL, h, 5);
    assert_true(n >= 1);
    assert_true(h[0].price_cents < 10000);
    assert_true(name_has(h, n, 2, "earphones") || name_has(h, n, 2, "airpods"));

    n = query(s_demo_search, "BEA-CHI-LIP-004", NULL, h, 5);
    assert_string_equal(h[0].name, "Red Lipstick");
    assert_true(h[0].exact_sku);

    search_filters_t f = { .category = "shoes" };  /* mens-shoes and womens-shoes */
    n = query(s_demo_search, "red", &f, h, 10);
    assert_int_equal(n, 10);
    for (int i = 0; i < n; i++)
        assert_non_null(strstr(h[i].category, "shoes"));

    n = query(s_demo_search, "rolex", NULL, h, 5);
    assert_true(name_has(h, n, 1, "rolex"));

    n = query(s_demo_search, "1 year warranty watch", NULL, h, 5);  /* free attributes */
    assert_true(n >= 1);
}

/* ---- the Pinecone store alone (against the fake) ----------------------------------- */

/* 450 products: upserts go in batches of PINECONE_UPSERT_MAX, each under the
 * byte limit, with the API version header. */
static void test_pinecone_batches(void **state)
{
    (void)state;
    /* the shared tests above asked the fake, not the local file */
    assert_true(pc_fake_count("/query", "small.vindex", 0, NULL) >= 10);
    enum { N = 450 };
    static store_product_t rows[N];
    static char skus[N][16], names[N][48];
    for (int i = 0; i < N; i++) {
        snprintf(skus[i], sizeof skus[i], "GEN-%03d", i);
        snprintf(names[i], sizeof names[i], "Generic widget number %d", i);
        rows[i] = (store_product_t)P(skus[i], names[i], i % 2 ? "tools" : "toys", NULL,
                                     "A widget.", 100 + i, i % 3);
    }
    catalogue_t c = { rows, N };
    char path[512];
    path_of("batches.vindex", path, sizeof path);
    size_t from = pc_fake_requests();
    build(path, &c, "local");
    json_t *reqs;
    int n = pc_fake_count("/vectors/upsert", "batches.vindex", from, &reqs);
    assert_int_equal(n, (N + PINECONE_UPSERT_MAX - 1) / PINECONE_UPSERT_MAX);
    size_t i;
    json_t *r;
    int total = 0;
    json_array_foreach(reqs, i, r) {
        if (i < from || strcmp(json_string_value(json_object_get(r, "path")), "/vectors/upsert"))
            continue;
        assert_true(json_integer_value(json_object_get(r, "bytes")) <= PINECONE_BODY_MAX);
        assert_string_equal(json_string_value(json_object_get(r, "api_version")),
                            PINECONE_API_VERSION);
        assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
        if (!strcmp(json_string_value(json_object_get(r, "namespace")), "batches.vindex"))
            total += (int)json_integer_value(json_object_get(r, "count"));
    }
    json_decref(reqs);
    assert_int_equal(total, N);
    assert_int_equal(pc_fake_vectors("batches.vindex"), N);
    /* the marker records the embedder beside the namespace */
    assert_int_equal(pc_fake_vectors("batches.vindex" VSTORE_MARKER_SUFFIX), 1);
}

/* The client's metadata filters, straight: $lt, $in, $eq, and $and of them. */
static void test_pinecone_filters(void **state)
{
    (void)state;
    pinecone_t *pc;
    char err[256], host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", pc_fake_port());
    char url[80];
    snprintf(url, sizeof url, "http://%s", host);
    pinecone_opts_t o = { .host = url, .api_key = PC_KEY, .ns = "filters" };
    assert_int_equal(pinecone_new(&o, &pc, err, sizeof err), SOUK_OK);
    static const struct { const char *id, *cat; int price; bool stock; float x, y; } v[] = {
        { "a", "shoes", 500, true, 1, 0 },   { "b", "shoes", 1500, false, 0.9f, 0.1f },
        { "c", "hats", 700, true, 0.8f, 0.2f }, { "d", "bags", 300, true, 0, 1 },
    };
    for (size_t i = 0; i < 4; i++) {
        json_t *m = json_pack("{s:s,s:i,s:b}", "category", v[i].cat, "price_cents", v[i].price,
                              "in_stock", v[i].stock);
        float vec[2] = { v[i].x, v[i].y };
        assert_int_equal(pinecone_upsert_add(pc, v[i].id, vec, 2, m), SOUK_OK);
        json_decref(m);
    }
    assert_int_equal(pinecone_upsert_flush(pc), SOUK_OK);
    float q[2] = { 1, 0 };
    const pinecone_match_t *m;
    int n;
    assert_int_equal(pinecone_query(pc, q, 2, 10, NULL, true, &m, &n), SOUK_OK);
    assert_int_equal(n, 4);
    assert_string_equal(m[0].id, "a");                        /* cosine order */
    assert_string_equal(m[3].id, "d");
    assert_string_equal(json_string_value(json_object_get(m[0].metadata, "category")), "shoes");
    json_t *f = json_pack("{s:{s:i}}", "price_cents", "$lt", 1000);
    assert_int_equal(pinecone_query(pc, q, 2, 10, f, false, &m, &n), SOUK_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        assert_string_not_equal(m[i].id, "b");
    json_decref(f);
    f = json_pack("{s:[{s:{s:[s,s]}},{s:{s:b}}]}", "$and", "category", "$in", "shoes", "hats",
                  "in_stock", "$eq", 1);
    assert_int_equal(pinecone_query(pc, q, 2, 10, f, false, &m, &n), SOUK_OK);
    assert_int_equal(n, 2);
    assert_string_equal(m[0].id, "a");
    assert_string_equal(m[1].id, "c");
    json_decref(f);
    f = json_pack("{s:{s:i}}", "price_cents", "$gte", 700);
    assert_int_equal(pinecone_query(pc, q, 2, 1, f, false, &m, &n), SOUK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(m[0].id, "b");
    json_decref(f);
    /* delete by id, then the whole namespace */
    const char *gone[] = { "a" };
    assert_int_equal(pinecone_delete_ids(pc, gone, 1), SOUK_OK);
    assert_int_equal(pc_fake_vectors("filters"), 3);
    assert_int_equal(pinecone_delete_all(pc, NULL), SOUK_OK);
    assert_int_equal(pc_fake_vectors("filters"), 0);
    assert_int_equal(pinecone_delete_all(pc, NULL), SOUK_OK);  /* 404: already empty */
    pinecone_destroy(&pc);
}

/* Products the new catalogue no longer has are deleted from Pinecone. */
static void test_pinecone_vanished_deleted(void **state)
{
    (void)state;
    char path[512];
    path_of("vanish.vindex", path, sizeof path);
    build(path, &s_small_cat, "local");
    assert_int_equal(pc_fake_vectors("vanish.vindex"), (int)SMALL_N);
    catalogue_t fewer = { s_small, SMALL_N - 2 };
    build(path, &fewer, "local");
    assert_int_equal(pc_fake_vectors("vanish.vindex"), (int)SMALL_N - 2);
    search_t *s = open_search(path, "local");
    search_hit_t h[5];
    int n = query(s, "coffee mug", NULL, h, 5);
    assert_int_equal(rank_of(h, n, "MUG-1"), -1);
    search_close(&s);
}

/* Another embedder of 384 dimensions: a text's bytes spread over the vector. */
static int other_embed(void *impl, embed_kind_t kind, const char *const *texts, size_t n,
                       float *out)
{
    (void)impl, (void)kind;
    for (size_t i = 0; i < n; i++) {
        float *v = out + i * 384;
        memset(v, 0, 384 * sizeof *v);
        v[0] = 1.0f;
        for (const char *p = texts[i] ? texts[i] : ""; *p; p++)
            v[(unsigned char)*p % 384] += 1.0f;
        float norm = 0;
        for (int d = 0; d < 384; d++)
            norm += v[d] * v[d];
        for (int d = 0; d < 384; d++)
            v[d] /= sqrtf(norm);
    }
    return SOUK_OK;
}

static const embed_vtable_t s_other_vt = { .name = "other", .batch_max = 16, .embed = other_embed };

/* The namespace rebuilt by another embedder: a search embedding with the
 * old one is refused, saying which is which. */
static void test_pinecone_mismatched_embedder(void **state)
{
    (void)state;
    char path[512], other[512];
    path_of("mix.vindex", path, sizeof path);
    path_of("mix256.vindex", other, sizeof other);
    build(path, &s_small_cat, "local");
    search_t *s = open_search(path, "local");
    search_hit_t h[5];
    query(s, "shoes", NULL, h, 5);
    /* the other file, same namespace, another embedder of the same
     * dimension (a Pinecone index has one) */
    embedder_t *e;
    char err[512] = "";
    assert_int_equal(embed_new_custom(&s_other_vt, NULL, 384, "another model", &e), SOUK_OK);
    assert_int_equal(search_build(other, e, each_row, &s_small_cat, NULL, err, sizeof err), SOUK_OK);
    embed_destroy(&e);
    /* the handle re-reads the marker (MARKER_RECHECK_S): a fresh one sees it at once */
    search_close(&s);
    s = open_search(path, "local");
    int n;
    assert_int_equal(search_query(s, "shoes", NULL, 5, h, &n), SOUK_ECONFIG);
    assert_non_null(strstr(search_last_error(s), "refused"));
    assert_non_null(strstr(search_last_error(s), "other/384/"));
    search_close(&s);
}

/* 429 and 503 are retried; retries spent is EIO; a malformed answer is
 * EPROTO; a wrong key is ECONFIG and the key is not in the error. */
static void test_pinecone_retries_and_errors(void **state)
{
    (void)state;
    search_hit_t h[5];
    int n;
    char path[512];
    path_of("small.vindex", path, sizeof path);
    search_t *s = open_search(path, "local");
    size_t from = pc_fake_requests();
    pc_fake_script("{\"rules\": [{\"path\": \"/query\", \"status\": 429, \"times\": 1},"
                " {\"path\": \"/query\", \"status\": 503, \"times\": 1}]}");
    n = query(s, "waterproof jacket", NULL, h, 5);
    assert_string_equal(h[0].sku, "JAC-1");
    assert_int_equal(pc_fake_count("/query", "small.vindex", from, NULL), 3);

    pc_fake_script("{\"rules\": [{\"path\": \"/query\", \"status\": 500, \"times\": 99}]}");
    assert_int_equal(search_query(s, "waterproof jacket", NULL, 5, h, &n), SOUK_EIO);
    assert_non_null(strstr(search_last_error(s), "HTTP 500"));
    int tried = pc_fake_count("/query", "small.vindex", from, NULL) - 3;
    assert_true(tried >= 2 && tried <= 1 + PINECONE_RETRIES);   /* retried within the budget */

    pc_fake_script("{\"rules\": [{\"path\": \"/query\", \"malformed\": true}]}");
    assert_int_equal(search_query(s, "waterproof jacket", NULL, 5, h, &n), SOUK_EPROTO);
    assert_non_null(strstr(search_last_error(s), "malformed"));
    pc_fake_script("{\"rules\": []}");
    n = query(s, "waterproof jacket", NULL, h, 5);
    assert_string_equal(h[0].sku, "JAC-1");
    search_close(&s);

    /* a query that does not answer in time: ETIMEDOUT within the budget */
    pinecone_t *pc;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", pc_fake_port());
    pinecone_opts_t o = { .host = url, .api_key = PC_KEY, .ns = "small.vindex",
                          .timeout_ms = 200, .backoff_ms = 10, .query_budget_ms = 700 };
    assert_int_equal(pinecone_new(&o, &pc, NULL, 0), SOUK_OK);
    pc_fake_script("{\"rules\": [{\"path\": \"/query\", \"delay_ms\": 1500, \"times\": 99}]}");
    from = pc_fake_requests();
    float q[384] = { 1 };
    const pinecone_match_t *m;
    assert_int_equal(pinecone_query(pc, q, 384, 5, NULL, false, &m, &n), SOUK_ETIMEDOUT);
    assert_non_null(strstr(pinecone_last_error(pc), "/query"));
    tried = pc_fake_count("/query", "small.vindex", from, NULL);
    assert_true(tried >= 2 && tried <= 1 + PINECONE_RETRIES);      /* retried, then gave up */
    pinecone_destroy(&pc);
    pc_fake_script("{\"rules\": []}");

    setenv("PINECONE_API_KEY", "wrong-key-secret", 1);
    s = open_search(path, "local");
    assert_int_equal(search_query(s, "jacket", NULL, 5, h, &n), SOUK_ECONFIG);
    assert_non_null(strstr(search_last_error(s), "PINECONE_API_KEY"));
    assert_null(strstr(search_last_error(s), "wrong-key-secret"));
    search_close(&s);
    setenv("PINECONE_API_KEY", PC_KEY, 1);
}

/* ---- main ------------------------------------------------------------------------ */

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/souk-test-search-XXXXXX");
    if (!mkdtemp(s_dir))
        return 1;
    const char *vector = getenv("SEARCH_TEST_VECTOR");
    s_pinecone = vector && strcmp(vector, "pinecone") == 0;
    if (s_pinecone && pc_fake_start(SOUK_SRC_DIR) != 0) {
        fprintf(stderr, "the fake Pinecone did not start\n");
        return 1;
    }
    const struct CMUnitTest small[] = {
        cmocka_unit_test(test_price_words),
        cmocka_unit_test(test_synonym_running_shoes),
        cmocka_unit_test(test_typos),
        cmocka_unit_test(test_description_only),
        cmocka_unit_test(test_attribute_only),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_sku_first),
        cmocka_unit_test(test_brand_boost),
        cmocka_unit_test(test_mismatched_embedder_refused),
        cmocka_unit_test(test_rebuild_seen_by_open_reader),
        cmocka_unit_test(test_corrupt_and_truncated_refused),
        cmocka_unit_test(test_zero_products),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_wide_vectors),
        cmocka_unit_test(test_build_from_store),
        cmocka_unit_test(test_default_namespace),
    };
    const struct CMUnitTest demo[] = {
        cmocka_unit_test(test_demo_queries),
    };
    int failed = cmocka_run_group_tests_name("search", small, setup_small, teardown_small);
    failed += cmocka_run_group_tests_name("search_demo", demo, setup_demo, teardown_demo);
    const struct CMUnitTest pinecone[] = {
        cmocka_unit_test(test_pinecone_batches),
        cmocka_unit_test(test_pinecone_filters),
        cmocka_unit_test(test_pinecone_vanished_deleted),
        cmocka_unit_test(test_pinecone_mismatched_embedder),
        cmocka_unit_test(test_pinecone_retries_and_errors),
    };
    if (s_pinecone)
        failed += cmocka_run_group_tests_name("search_pinecone", pinecone, setup_small,
                                              teardown_small);
    pc_fake_stop();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s_dir);
    return failed;
}
