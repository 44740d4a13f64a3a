/* souk catalog: a merchant's product file -> validated store rows.
 *
 * Reads a catalogue file into store_product_t rows, validating every field
 * here, at the edge, so the store only ever sees good rows:
 *   - CSV with a header row: RFC 4180 quoting (separators, quotes and line
 *     breaks inside quoted cells), CRLF or LF, a UTF-8 byte order mark; the
 *     separator is ',' unless the header line has more ';' or tabs;
 *   - a JSON array of objects;
 *   - JSON lines: one object per line.
 * Known fields (any case): sku, name, description, price, currency (default
 * USD), category, stock (default 0), image_url, brand, tags. Every other
 * column or key is a free attribute: attrs is a JSON object of strings
 * (numbers and booleans as their text, nested objects and arrays as compact
 * JSON text), which search indexes with the rest.
 *
 * A rejected record does not stop the reading: every problem is collected
 * with the line where its record starts, so a merchant sees them all at
 * once ("line 17: price: not a number ('abc')"). A SKU given twice is a
 * problem naming both lines. Whether to import a file with problems is the
 * caller's choice (`souk import` imports nothing then).
 *
 * Contracts: SOUK_OK or a negative souk/error.h code. A catalogue owns its
 * rows and problems; catalog_destroy frees them all. */
#ifndef SOUK_CATALOG_H
#define SOUK_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "souk/store.h"

#define CATALOG_FORMAT_MAP(XX)                                               \
    XX(AUTO, "auto") XX(CSV, "csv") XX(JSON, "json") XX(JSONL, "jsonl")

typedef enum {
#define XX(name, text) CATALOG_##name,
    CATALOG_FORMAT_MAP(XX)
#undef XX
} catalog_format_t;

#define CATALOG_SKU_MAX 128         /* bytes */
#define CATALOG_NAME_MAX 500
#define CATALOG_TEXT_MAX 20000      /* description, an attribute's value */
#define CATALOG_PRICE_MAX_CENTS INT64_C(100000000000)   /* one billion */
#define CATALOG_STOCK_MAX INT64_C(1000000000000)

/* Called now and then while reading: done of total bytes, records so far. */
typedef void (*catalog_progress_fn)(void *arg, size_t done, size_t total, size_t records);

typedef struct {
    catalog_format_t format;        /* CATALOG_AUTO: from the name, else the content */
    int64_t now_ms;                 /* every row's updated_ms */
    catalog_progress_fn progress;   /* optional */
    void *progress_arg;
} catalog_options_t;

typedef struct {
    size_t line;                    /* 1-based line where the record starts; 0: the whole file */
    char *reason;                   /* "price: not a number ('abc')" */
} catalog_problem_t;

typedef struct catalog_priv_s catalog_priv_t;

/* Read-only for callers. */
typedef struct {
    catalog_format_t format;        /* the format read */
    store_product_t *rows;          /* the valid records, in file order */
    size_t *lines;                  /* lines[i]: where rows[i] starts */
    size_t n_rows;
    size_t records;                 /* records read, valid or not */
    catalog_problem_t *problems;    /* in file order */
    size_t n_problems;
    catalog_priv_t *priv;           /* SKU index, capacities */
} catalog_t;

/* Reads len bytes of data (need not be NUL-terminated). name (may be NULL)
 * is the file name, for CATALOG_AUTO. SOUK_OK also when the file has
 * problems: they are in (*out)->problems. SOUK_EINVAL, SOUK_ENOMEM. Caller
 * owns *out. */
int catalog_parse(const char *data, size_t len, const char *name, const catalog_options_t *opt,
                  catalog_t **out);
/* catalog_parse over the file at path (mapped, not copied). SOUK_EIO with a
 * sentence in err when it cannot be read. */
int catalog_load(const char *path, const catalog_options_t *opt, catalog_t **out, char *err,
                 size_t errlen);
/* Frees the catalogue and sets *self_p to NULL; NULL or *NULL is a no-op. */
void catalog_destroy(catalog_t **self_p);

/* Index in rows of the valid row with that SKU, or -1. */
ssize_t catalog_find(const catalog_t *self, const char *sku);

/* Parses a price given as text: "9.99", "9", ".5", "1,299.99", "9,99"
 * (a decimal comma), surrounding spaces allowed. SOUK_OK with *cents, or
 * SOUK_EINVAL with the reason in why ("not a number ('abc')", "negative
 * (-1.50)", "more than two decimals ('9.999')", "too large"). */
int catalog_parse_price(const char *text, int64_t *cents, char *why, size_t whylen);

/* "csv"... for a format; "?" out of range. */
const char *catalog_format_name(catalog_format_t f);
/* SOUK_OK with *f, or SOUK_EINVAL for an unknown name. */
int catalog_format_parse(const char *name, catalog_format_t *f);

#endif
