/* The catalogue reader: CSV (quoting, BOM, CRLF, separators), JSON arrays,
 * JSON lines, free attributes, field validation and the problem report with
 * line numbers. Pure parsing: no store, no files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/catalog.h"
#include "souk/error.h"

static catalog_t *s_parse(const char *name, const char *text)
{
    catalog_options_t opt = { .format = CATALOG_AUTO, .now_ms = 1700000000000 };
    catalog_t *cat = NULL;
    assert_int_equal(catalog_parse(text, strlen(text), name, &opt, &cat), SOUK_OK);
    assert_non_null(cat);
    return cat;
}

static const store_product_t *s_row(const catalog_t *cat, const char *sku)
{
    ssize_t i = catalog_find(cat, sku);
    assert_true(i >= 0);
    return &cat->rows[i];
}

/* The problem reported for line, or fails. */
static const char *s_problem_at(const catalog_t *cat, size_t line)
{
    for (size_t i = 0; i < cat->n_problems; i++)
        if (cat->problems[i].line == line)
            return cat->problems[i].reason;
    fail_msg("no problem reported for line %zu", line);
    return NULL;
}

static void s_assert_attr(const store_product_t *p, const char *key, const char *value)
{
    assert_non_null(p->attrs);
    json_t *a = json_loads(p->attrs, 0, NULL);
    assert_true(json_is_object(a));
    json_t *v = json_object_get(a, key);
    if (!json_is_string(v))
        fail_msg("attribute %s missing in %s", key, p->attrs);
    assert_string_equal(json_string_value(v), value);
    json_decref(a);
}

static void csv_quoting_bom_crlf(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("p.csv",
        "\xEF\xBB\xBFSKU, Name ,description,price,currency,category,stock,image_url,brand,tags,colour\r\n"
        "MUG-1,\"Mug, blue\",\"Holds 300 ml.\r\nSays \"\"hello\"\".\",9.99,usd,Kitchen,12,"
        "https://x.example/m.png,Acme,\"mug;kitchen\",blue\r\n"
        "\r\n"
        "LAMP-2,Lamp,,\"1,299.50\",EUR,,,,,a|b|c,\r\n"
        "CUP-3,Cup,\"line one\nline two\",3,,,0,,,\"a, b\",\"\"\r\n");
    assert_int_equal(cat->format, CATALOG_CSV);
    assert_int_equal(cat->n_problems, 0);
    assert_int_equal(cat->n_rows, 3);
    assert_int_equal(cat->records, 3);

    const store_product_t *m = s_row(cat, "MUG-1");
    assert_string_equal(m->name, "Mug, blue");
    assert_string_equal(m->description, "Holds 300 ml.\nSays \"hello\".");
    assert_int_equal(m->price_cents, 999);
    assert_string_equal(m->currency, "USD");
    assert_string_equal(m->category, "Kitchen");
    assert_int_equal(m->stock, 12);
    assert_string_equal(m->image_url, "https://x.example/m.png");
    assert_string_equal(m->brand, "Acme");
    assert_string_equal(m->tags, "[\"mug\",\"kitchen\"]");
    assert_int_equal(m->updated_ms, 1700000000000);
    s_assert_attr(m, "colour", "blue");
    assert_int_equal(cat->lines[catalog_find(cat, "MUG-1")], 2);

    const store_product_t *l = s_row(cat, "LAMP-2");
    assert_int_equal(l->price_cents, 129950);
    assert_string_equal(l->currency, "EUR");
    assert_null(l->description);
    assert_null(l->category);
    assert_int_equal(l->stock, 0);
    assert_string_equal(l->tags, "[\"a\",\"b\",\"c\"]");
    assert_null(l->attrs);          /* an empty cell is no attribute */
    assert_int_equal(cat->lines[catalog_find(cat, "LAMP-2")], 5);

    const store_product_t *c = s_row(cat, "CUP-3");
    assert_string_equal(c->description, "line one\nline two");
    assert_string_equal(c->currency, "USD");
    assert_string_equal(c->tags, "[\"a\",\"b\"]");
    assert_int_equal(cat->lines[catalog_find(cat, "CUP-3")], 6);
    catalog_destroy(&cat);
    assert_null(cat);
}

static void csv_semicolons_and_tabs(void **state)
{
    (void)state;
    catalog_t *cat = s_parse(NULL, "sku;name;price;size\nA;Shirt;9,99;M\n");
    assert_int_equal(cat->n_problems, 0);
    assert_int_equal(s_row(cat, "A")->price_cents, 999);
    s_assert_attr(s_row(cat, "A"), "size", "M");
    catalog_destroy(&cat);

    cat = s_parse("t.tsv", "sku\tname\tprice\nB\tBoots, brown\t45\n");
    assert_int_equal(cat->n_problems, 0);
    assert_string_equal(s_row(cat, "B")->name, "Boots, brown");
    assert_int_equal(s_row(cat, "B")->price_cents, 4500);
    catalog_destroy(&cat);
}

static void csv_structure_problems(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("p.csv",
        "sku,name,price\n"
        "A,Mug,9.99\n"
        "B,Mug, blue,9.99\n"              /* line 3: an unquoted comma */
        "C,\"Cup\"x,1\n"                  /* line 4: text after a quote */
        "D,Dish,2,,\n"                    /* trailing empty cells are fine */
        "E,\"never closed,1\n"            /* line 6 */
        "F,Fork,1\n");
    assert_int_equal(cat->n_rows, 2);
    assert_non_null(strstr(s_problem_at(cat, 3), "4 cells where the header has 3"));
    assert_non_null(strstr(s_problem_at(cat, 4), "text after a closing quote"));
    assert_non_null(strstr(s_problem_at(cat, 6), "never closed"));
    assert_int_equal(cat->n_problems, 3);
    catalog_destroy(&cat);
}

static void csv_header_problems(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("p.csv", "sku,name,colour\nA,Mug,red\n");
    assert_int_equal(cat->n_problems, 1);
    assert_string_equal(s_problem_at(cat, 1), "the header has no 'price' column");
    catalog_destroy(&cat);

    cat = s_parse("p.csv", "sku,name,price,Colour,colour\nA,Mug,1,red,blue\n");
    assert_non_null(strstr(s_problem_at(cat, 1), "appears twice"));
    catalog_destroy(&cat);

    cat = s_parse("p.csv", "sku,name,price\n");
    assert_int_equal(cat->n_problems, 1);
    assert_string_equal(s_problem_at(cat, 0), "no products in the file");
    catalog_destroy(&cat);

    cat = s_parse("p.csv", "");
    assert_int_equal(cat->n_problems, 1);
    catalog_destroy(&cat);

    cat = s_parse("p.csv", "sku,name,price\nA,\xff\xfe,1\n");
    assert_non_null(strstr(s_problem_at(cat, 2), "not UTF-8"));
    catalog_destroy(&cat);
}

static void json_array_with_lines(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("c.json",
        "[\n"
        "  {\"sku\": \"J-1\", \"name\": \"Lamp\", \"price\": 19.99, \"tags\": [\"home\", \"light\"],\n"
        "   \"dimensions\": {\"w\": 10, \"h\": 20}, \"rating\": 4.5, \"vegan\": true, \"note\": null,\n"
        "   \"sizes\": [\"S\", \"M\"], \"Stock\": \"7\"},\n"
        "  {\"sku\": 1002, \"name\": \"Numbered\", \"price\": 5, \"currency\": \"gbp\"},\n"
        "  {\"sku\": \"J-3\", \"name\": \"Bad\", \"price\": \"abc\", \"stock\": -2}\n"
        "]\n");
    assert_int_equal(cat->format, CATALOG_JSON);
    assert_int_equal(cat->n_rows, 2);
    const store_product_t *p = s_row(cat, "J-1");
    assert_int_equal(p->price_cents, 1999);
    assert_int_equal(p->stock, 7);
    assert_string_equal(p->tags, "[\"home\",\"light\"]");
    s_assert_attr(p, "dimensions", "{\"w\":10,\"h\":20}");
    s_assert_attr(p, "rating", "4.5");
    s_assert_attr(p, "vegan", "true");
    s_assert_attr(p, "sizes", "[\"S\",\"M\"]");
    assert_null(strstr(p->attrs, "note"));
    assert_int_equal(cat->lines[catalog_find(cat, "J-1")], 2);
    assert_string_equal(s_row(cat, "1002")->currency, "GBP");
    assert_int_equal(cat->lines[catalog_find(cat, "1002")], 5);
    assert_string_equal(s_problem_at(cat, 6), "price: not a number ('abc'); stock: negative (-2)");
    catalog_destroy(&cat);
}

static void json_syntax_error_line(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("c.json",
        "[{\"sku\": \"A\", \"name\": \"a\", \"price\": 1},\n"
        " {\"sku\": \"B\",\n"
        "  \"name\" \"b\"}]\n");
    assert_int_equal(cat->n_problems, 1);
    assert_non_null(strstr(s_problem_at(cat, 3), "JSON:"));
    catalog_destroy(&cat);

    cat = s_parse("c.json", "[{\"sku\": \"A\", \"name\": \"a\", \"price\": 1, \"sku\": \"B\"}]");
    assert_non_null(strstr(s_problem_at(cat, 1), "duplicate"));
    catalog_destroy(&cat);
}

static void json_lines(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("c.jsonl",
        "{\"sku\":\"L1\",\"name\":\"One\",\"price\":1.5}\r\n"
        "\n"
        "{not json}\n"
        "[1, 2]\n"
        "{\"sku\":\"L5\",\"name\":\"Five\",\"price\":\"2.25\",\"stock\":3.0}\n");
    assert_int_equal(cat->format, CATALOG_JSONL);
    assert_int_equal(cat->n_rows, 2);
    assert_int_equal(cat->records, 4);
    assert_int_equal(s_row(cat, "L1")->price_cents, 150);
    assert_int_equal(s_row(cat, "L5")->stock, 3);
    assert_int_equal(cat->lines[catalog_find(cat, "L5")], 5);
    assert_non_null(strstr(s_problem_at(cat, 3), "JSON:"));
    assert_string_equal(s_problem_at(cat, 4), "not a JSON object");
    catalog_destroy(&cat);
}

static void every_bad_row_reported(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("p.csv",
        "sku,name,price,stock,currency,image_url\n"
        "OK-1,Fine,1.00,1,,\n"
        ",No sku,1,,,\n"
        "NN,,1,,,\n"
        "P1,Price,-3.5,,,\n"
        "P2,Price,9.999,,,\n"
        "P3,Price,NaN,,,\n"
        "S1,Stock,1,2.5,,\n"
        "S2,Stock,1,-1,,\n"
        "C1,Cur,1,,dollars,\n"
        "U1,Url,1,,,ftp://x\n"
        "M1,Many,abc,x,$,\n");
    assert_int_equal(cat->n_rows, 1);
    assert_int_equal(cat->records, 11);
    assert_int_equal(cat->n_problems, 10);
    assert_string_equal(s_problem_at(cat, 3), "sku: missing");
    assert_string_equal(s_problem_at(cat, 4), "name: missing");
    assert_string_equal(s_problem_at(cat, 5), "price: negative ('-3.5')");
    assert_string_equal(s_problem_at(cat, 6), "price: more than two decimals ('9.999')");
    assert_string_equal(s_problem_at(cat, 7), "price: not a number ('NaN')");
    assert_string_equal(s_problem_at(cat, 8), "stock: not a whole number ('2.5')");
    assert_string_equal(s_problem_at(cat, 9), "stock: negative ('-1')");
    assert_string_equal(s_problem_at(cat, 10), "currency: not a three-letter code ('dollars')");
    assert_string_equal(s_problem_at(cat, 11), "image_url: not an http(s) URL ('ftp://x')");
    assert_string_equal(s_problem_at(cat, 12), "price: not a number ('abc'); currency: not a "
                                               "three-letter code ('$'); stock: not a whole number ('x')");
    catalog_destroy(&cat);
}

static void duplicate_sku_names_both_lines(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("p.csv",
        "sku,name,price\n"
        "A,First,1\n"
        "B,Bad,oops\n"
        "A,Second,2\n"
        "B,Again,3\n");
    assert_string_equal(s_problem_at(cat, 4), "sku 'A' is also on line 2");
    assert_string_equal(s_problem_at(cat, 5), "sku 'B' is also on line 3");
    assert_int_equal(cat->n_problems, 3);
    assert_int_equal(cat->n_rows, 1);
    catalog_destroy(&cat);
}

static void prices(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t cents;          /* -1: refused */
        const char *why;
    } cases[] = {
        { "9.99", 999, NULL }, { "9", 900, NULL }, { " .5 ", 50, NULL }, { "0", 0, NULL },
        { "9.990", 999, NULL }, { "9,99", 999, NULL }, { "9,5", 950, NULL },
        { "1,299.99", 129999, NULL }, { "1,299", 129900, NULL }, { "12,345,678.10", 1234567810, NULL },
        { "abc", -1, "not a number ('abc')" }, { "", -1, "missing" },
        { "-1.50", -1, "negative ('-1.50')" }, { "9.999", -1, "more than two decimals ('9.999')" },
        { "NaN", -1, "not a number ('NaN')" }, { "inf", -1, "not a number ('inf')" },
        { "1e3", -1, "not a number ('1e3')" }, { "1,2,3", -1, "not a number ('1,2,3')" },
        { "$5", -1, "not a number ('$5')" }, { "5.", 500, NULL }, { ".", -1, "not a number ('.')" },
        { "12,", -1, "not a number ('12,')" }, { "1.234,56", -1, "not a number ('1.234,56')" },
        { "0,5", 50, NULL }, { "-0", 0, NULL }, { "-", -1, "not a number ('-')" },
        { "99999999999", -1, "too large ('99999999999')" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t cents = -7;
        char why[128] = "";
        int rc = catalog_parse_price(cases[i].text, &cents, why, sizeof why);
        if (cases[i].cents >= 0) {
            if (rc != SOUK_OK || cents != cases[i].cents)
                fail_msg("'%s': rc %d, %lld cents, %s", cases[i].text, rc, (long long)cents, why);
        } else if (cases[i].why) {
            assert_int_equal(rc, SOUK_EINVAL);
            assert_string_equal(why, cases[i].why);
        }
    }
}

static void json_number_prices(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("c.jsonl",
        "{\"sku\":\"A\",\"name\":\"a\",\"price\":19.99}\n"
        "{\"sku\":\"B\",\"name\":\"b\",\"price\":0.1}\n"
        "{\"sku\":\"C\",\"name\":\"c\",\"price\":1234567.89}\n"
        "{\"sku\":\"D\",\"name\":\"d\",\"price\":-1}\n"
        "{\"sku\":\"E\",\"name\":\"e\",\"price\":0.125}\n"
        "{\"sku\":\"F\",\"name\":\"f\",\"price\":true}\n"
        "{\"sku\":\"G\",\"name\":\"g\"}\n");
    assert_int_equal(s_row(cat, "A")->price_cents, 1999);
    assert_int_equal(s_row(cat, "B")->price_cents, 10);
    assert_int_equal(s_row(cat, "C")->price_cents, 123456789);
    assert_string_equal(s_problem_at(cat, 4), "price: negative (-1)");
    assert_string_equal(s_problem_at(cat, 5), "price: more than two decimals (0.125)");
    assert_string_equal(s_problem_at(cat, 6), "price: not a number");
    assert_string_equal(s_problem_at(cat, 7), "price: missing");
    catalog_destroy(&cat);
}

static void tags_forms(void **state)
{
    (void)state;
    catalog_t *cat = s_parse("c.jsonl",
        "{\"sku\":\"A\",\"name\":\"a\",\"price\":1,\"tags\":\"x; y ;;z\"}\n"
        "{\"sku\":\"B\",\"name\":\"b\",\"price\":1,\"tags\":\"[\\\"p\\\", 2]\"}\n"
        "{\"sku\":\"C\",\"name\":\"c\",\"price\":1,\"tags\":[]}\n"
        "{\"sku\":\"D\",\"name\":\"d\",\"price\":1,\"tags\":{\"x\":1}}\n");
    assert_string_equal(s_row(cat, "A")->tags, "[\"x\",\"y\",\"z\"]");
    assert_string_equal(s_row(cat, "B")->tags, "[\"p\",\"2\"]");
    assert_null(s_row(cat, "C")->tags);
    assert_non_null(strstr(s_problem_at(cat, 4), "tags: not a list of words"));
    catalog_destroy(&cat);
}

static void format_forced_and_guessed(void **state)
{
    (void)state;
    catalog_format_t f;
    assert_int_equal(catalog_format_parse("JSONL", &f), SOUK_OK);
    assert_int_equal(f, CATALOG_JSONL);
    assert_int_equal(catalog_format_parse("xml", &f), SOUK_EINVAL);
    assert_string_equal(catalog_format_name(CATALOG_CSV), "csv");

    /* a .json file holding JSON lines is read as JSON lines */
    catalog_t *cat = s_parse("x.json", "{\"sku\":\"A\",\"name\":\"a\",\"price\":1}\n"
                                       "{\"sku\":\"B\",\"name\":\"b\",\"price\":2}\n");
    assert_int_equal(cat->format, CATALOG_JSONL);
    assert_int_equal(cat->n_rows, 2);
    catalog_destroy(&cat);

    const char *text = "sku,name,price\nA,a,1\n";
    catalog_options_t opt = { .format = CATALOG_JSON };
    assert_int_equal(catalog_parse(text, strlen(text), "x.csv", &opt, &cat), SOUK_OK);
    assert_int_equal(cat->n_rows, 0);
    assert_int_equal(cat->n_problems, 1);
    catalog_destroy(&cat);
    assert_int_equal(catalog_find(NULL, "A"), -1);
    catalog_destroy(NULL);
}

typedef struct {
    size_t calls, done, total, records;
} progress_seen_t;

static void s_on_progress(void *arg, size_t done, size_t total, size_t records)
{
    progress_seen_t *p = arg;
    assert_true(done >= p->done && done <= total);
    *p = (progress_seen_t) { p->calls + 1, done, total, records };
}

static void progress_reaches_the_end(void **state)
{
    (void)state;
    progress_seen_t seen = { 0 };
    catalog_options_t opt = { .progress = s_on_progress, .progress_arg = &seen };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f, "sku,name,price\n");
    for (int i = 0; i < 5000; i++)
        fprintf(f, "S%d,Item %d,%d.50\n", i, i, i);
    fclose(f);
    catalog_t *cat = NULL;
    assert_int_equal(catalog_parse(text, len, "big.csv", &opt, &cat), SOUK_OK);
    assert_int_equal(cat->n_rows, 5000);
    assert_int_equal(s_row(cat, "S4999")->price_cents, 499950);
    assert_true(seen.calls >= 3);
    assert_int_equal(seen.done, len);
    assert_int_equal(seen.total, len);
    assert_int_equal(seen.records, 5000);
    catalog_destroy(&cat);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv_quoting_bom_crlf),
        cmocka_unit_test(csv_semicolons_and_tabs),
        cmocka_unit_test(csv_structure_problems),
        cmocka_unit_test(csv_header_problems),
        cmocka_unit_test(json_array_with_lines),
        cmocka_unit_test(json_syntax_error_line),
        cmocka_unit_test(json_lines),
        cmocka_unit_test(every_bad_row_reported),
        cmocka_unit_test(duplicate_sku_names_both_lines),
        cmocka_unit_test(prices),
        cmocka_unit_test(json_number_prices),
        cmocka_unit_test(tags_forms),
        cmocka_unit_test(format_forced_and_guessed),
        cmocka_unit_test(progress_reaches_the_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
