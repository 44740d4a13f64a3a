/* A small JSON-schema validator for the subset the tools' table uses.
 *
 * Errors name the path of the value ("items[1].quantity") and say what it
 * must be, in words a model can act on; the first problem found is reported.
 * Recursion follows the schema, not the document, so a deeply nested
 * argument costs no more than the schema is deep. A schema keyword the
 * validator does not know is refused (SOUK_ECONFIG) rather than ignored. */
#include "tools_priv.h"

#include "souk/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PATH_MAX_BYTES 256

typedef struct {
    char path[PATH_MAX_BYTES];
    char *err;
    size_t errlen;
} s_val_t;

static int s_err(s_val_t *v, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int s_err(s_val_t *v, int rc, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (v->errlen)
        snprintf(v->err, v->errlen, "%s%s: %s", rc == SOUK_ECONFIG ? "schema at " : "",
                 *v->path ? v->path : "arguments", what);
    return rc;
}

/* Appends ".name" (or "name" at the root) or "[i]"; returns the old length. */
static size_t s_push_name(s_val_t *v, const char *name)
{
    size_t len = strlen(v->path);
    snprintf(v->path + len, sizeof v->path - len, "%s%s", len ? "." : "", name);
    return len;
}

static size_t s_push_index(s_val_t *v, size_t i)
{
    size_t len = strlen(v->path);
    snprintf(v->path + len, sizeof v->path - len, "[%zu]", i);
    return len;
}

static void s_pop(s_val_t *v, size_t len)
{
    v->path[len] = '\0';
}

static const char *const s_keywords[] = {
    "type", "description", "properties", "required", "additionalProperties", "minLength",
    "maxLength", "minimum", "maximum", "items", "minItems", "maxItems", "enum", NULL,
};

static int s_check_keywords(s_val_t *v, const json_t *schema)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)schema, key, val) {
        bool known = false;
        for (int i = 0; s_keywords[i] && !known; i++)
            known = strcmp(key, s_keywords[i]) == 0;
        if (!known)
            return s_err(v, SOUK_ECONFIG, "unsupported keyword '%s'", key);
    }
    json_t *extra = json_object_get(schema, "additionalProperties");
    if (extra && !json_is_false(extra))
        return s_err(v, SOUK_ECONFIG, "additionalProperties must be false");
    return SOUK_OK;
}

/* "5", "0.5": a bound as written. */
static void s_num_text(const json_t *n, char *buf, size_t len)
{
    if (json_is_integer(n))
        snprintf(buf, len, "%lld", (long long)json_integer_value(n));
    else
        snprintf(buf, len, "%g", json_number_value(n));
}

/* "between 1 and 100", "of at least 1", "of at most 5", "" */
static void s_range_text(const json_t *lo, const json_t *hi, char *buf, size_t len)
{
    char a[32], b[32];
    if (lo)
        s_num_text(lo, a, sizeof a);
    if (hi)
        s_num_text(hi, b, sizeof b);
    if (lo && hi)
        snprintf(buf, len, " between %s and %s", a, b);
    else if (lo)
        snprintf(buf, len, " of at least %s", a);
    else if (hi)
        snprintf(buf, len, " of at most %s", b);
    else
        buf[0] = '\0';
}

static bool s_is_integral(const json_t *doc)
{
    if (json_is_integer(doc))
        return true;
    double d = json_real_value(doc);
    return json_is_real(doc) && isfinite(d) && d == floor(d) && fabs(d) <= 9007199254740992.0;
}

static int s_check_number(s_val_t *v, const json_t *schema, const json_t *doc, bool integer)
{
    const json_t *lo = json_object_get(schema, "minimum"), *hi = json_object_get(schema, "maximum");
    if ((lo && !json_is_number(lo)) || (hi && !json_is_number(hi)))
        return s_err(v, SOUK_ECONFIG, "minimum and maximum must be numbers");
    double d = json_number_value(doc);
    bool ok = integer ? s_is_integral(doc) : json_is_number(doc);
    if (ok && lo)
        ok = d >= json_number_value(lo);
    if (ok && hi)
        ok = d <= json_number_value(hi);
    if (ok)
        return SOUK_OK;
    char range[80];
    s_range_text(lo, hi, range, sizeof range);
    return s_err(v, SOUK_EINVAL, "must be %s%s", integer ? "an integer" : "a number", range);
}

/* Characters (code points) of a UTF-8 string; jansson's strings are valid UTF-8. */
static size_t s_chars(const json_t *s)
{
    const char *p = json_string_value(s);
    size_t n = 0, len = json_string_length(s);
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)p[i] & 0xC0) != 0x80;
    return n;
}

static int s_check_string(s_val_t *v, const json_t *schema, const json_t *doc)
{
    const json_t *lo = json_object_get(schema, "minLength"), *hi = json_object_get(schema, "maxLength");
    if ((lo && !json_is_integer(lo)) || (hi && !json_is_integer(hi)))
        return s_err(v, SOUK_ECONFIG, "minLength and maxLength must be integers");
    if (!json_is_string(doc))
        return s_err(v, SOUK_EINVAL, "must be a string");
    size_t n = s_chars(doc);
    if (lo && n < (size_t)json_integer_value(lo))
        return json_integer_value(lo) == 1 ? s_err(v, SOUK_EINVAL, "must not be empty")
                                           : s_err(v, SOUK_EINVAL, "must be at least %lld characters long",
                                                   (long long)json_integer_value(lo));
    if (hi && n > (size_t)json_integer_value(hi))
        return s_err(v, SOUK_EINVAL, "must be at most %lld characters long (it has %zu)",
                     (long long)json_integer_value(hi), n);
    return SOUK_OK;
}

static int s_check(s_val_t *v, const json_t *schema, const json_t *doc);

static int s_check_array(s_val_t *v, const json_t *schema, const json_t *doc)
{
    const json_t *lo = json_object_get(schema, "minItems"), *hi = json_object_get(schema, "maxItems");
    const json_t *items = json_object_get(schema, "items");
    if ((lo && !json_is_integer(lo)) || (hi && !json_is_integer(hi)) || (items && !json_is_object(items)))
        return s_err(v, SOUK_ECONFIG, "minItems, maxItems or items malformed");
    size_t n = json_array_size(doc);
    bool ok = json_is_array(doc) && (!lo || n >= (size_t)json_integer_value(lo))
        && (!hi || n <= (size_t)json_integer_value(hi));
    if (!ok) {
        char range[80] = "";
        if (lo && hi)
            snprintf(range, sizeof range, " of %lld to %lld items", (long long)json_integer_value(lo),
                     (long long)json_integer_value(hi));
        return s_err(v, SOUK_EINVAL, "must be an array%s", range);
    }
    for (size_t i = 0; items && i < n; i++) {
        size_t mark = s_push_index(v, i);
        int rc = s_check(v, items, json_array_get(doc, i));
        if (rc)
            return rc;
        s_pop(v, mark);
    }
    return SOUK_OK;
}

/* "query, filters, limit" */
static void s_field_list(const json_t *props, char *buf, size_t len)
{
    size_t o = 0;
    const char *name;
    json_t *s;
    buf[0] = '\0';
    json_object_foreach((json_t *)props, name, s) {
        int w = snprintf(buf + o, len - o, "%s%s", o ? ", " : "", name);
        if (w < 0 || (size_t)w >= len - o)
            break;
        o += (size_t)w;
    }
}

static int s_check_object(s_val_t *v, const json_t *schema, const json_t *doc)
{
    const json_t *props = json_object_get(schema, "properties");
    const json_t *req = json_object_get(schema, "required");
    if ((props && !json_is_object(props)) || (req && !json_is_array(req)))
        return s_err(v, SOUK_ECONFIG, "properties or required malformed");
    if (!json_is_object(doc))
        return s_err(v, SOUK_EINVAL, "must be an object");
    const char *name;
    json_t *val;
    json_object_foreach((json_t *)doc, name, val) {
        if (json_object_get(props, name))
            continue;
        char fields[256];
        s_field_list(props, fields, sizeof fields);
        size_t mark = s_push_name(v, name);
        int rc = *fields ? s_err(v, SOUK_EINVAL, "unknown field (the fields are: %s)", fields)
                         : s_err(v, SOUK_EINVAL, "unknown field (this takes no arguments)");
        s_pop(v, mark);
        return rc;
    }
    size_t i;
    json_t *r;
    json_array_foreach(req, i, r) {
        if (!json_is_string(r))
            return s_err(v, SOUK_ECONFIG, "required holds a non-string");
        if (json_object_get(doc, json_string_value(r)))
            continue;
        size_t mark = s_push_name(v, json_string_value(r));
        int rc = s_err(v, SOUK_EINVAL, "is required");
        s_pop(v, mark);
        return rc;
    }
    json_object_foreach((json_t *)props, name, val) {
        json_t *field = json_object_get(doc, name);
        if (!field)
            continue;
        size_t mark = s_push_name(v, name);
        int rc = s_check(v, val, field);
        if (rc)
            return rc;
        s_pop(v, mark);
    }
    return SOUK_OK;
}

static int s_check_enum(s_val_t *v, const json_t *choices, const json_t *doc)
{
    if (!json_is_array(choices))
        return s_err(v, SOUK_ECONFIG, "enum must be an array");
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c)
        if (json_equal((json_t *)c, (json_t *)doc))
            return SOUK_OK;
    char list[256];
    size_t o = 0;
    list[0] = '\0';
    json_array_foreach(choices, i, c) {
        char *t = json_dumps(c, JSON_ENCODE_ANY | JSON_COMPACT);
        int w = snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", t ? t : "?");
        free(t);
        if (w < 0 || (size_t)w >= sizeof list - o)
            break;
        o += (size_t)w;
    }
    return s_err(v, SOUK_EINVAL, "must be one of: %s", list);
}

static int s_check(s_val_t *v, const json_t *schema, const json_t *doc)
{
    if (!json_is_object(schema))
        return s_err(v, SOUK_ECONFIG, "not an object");
    int rc = s_check_keywords(v, schema);
    if (rc)
        return rc;
    const json_t *choices = json_object_get(schema, "enum");
    if (choices && (rc = s_check_enum(v, choices, doc)))
        return rc;
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (!type)
        return choices ? SOUK_OK : s_err(v, SOUK_ECONFIG, "no type");
    if (strcmp(type, "object") == 0)
        return s_check_object(v, schema, doc);
    if (strcmp(type, "array") == 0)
        return s_check_array(v, schema, doc);
    if (strcmp(type, "string") == 0)
        return s_check_string(v, schema, doc);
    if (strcmp(type, "integer") == 0)
        return s_check_number(v, schema, doc, true);
    if (strcmp(type, "number") == 0)
        return s_check_number(v, schema, doc, false);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(doc) ? SOUK_OK : s_err(v, SOUK_EINVAL, "must be true or false");
    return s_err(v, SOUK_ECONFIG, "unsupported type '%s'", type);
}

int tools_validate(const json_t *schema, const json_t *doc, char *err, size_t errlen)
{
    s_val_t v = { .err = err, .errlen = errlen };
    if (errlen)
        err[0] = '\0';
    if (!schema || !doc)
        return s_err(&v, SOUK_EINVAL, "missing");
    return s_check(&v, schema, doc);
}

int tools_validate_args(const char *tool, const char *args_json, json_t **args, char *err,
                        size_t errlen)
{
    *args = NULL;
    const tools_def_t *def = tools_find(tool);
    if (!def) {
        snprintf(err, errlen, "There is no tool named '%.64s'.", tool ? tool : "");
        return SOUK_EINVAL;
    }
    if (!args_json || !*args_json)
        args_json = "{}";
    size_t len = strlen(args_json);
    if (len > TOOLS_ARGS_MAX) {
        snprintf(err, errlen, "The arguments of %s are too long (%zu bytes, at most %d).",
                 def->name, len, TOOLS_ARGS_MAX);
        return SOUK_EINVAL;
    }
    json_error_t je;
    json_t *doc = json_loadb(args_json, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(err, errlen, "The arguments of %s are not valid JSON: %s (at character %d).",
                 def->name, je.text, je.position);
        return SOUK_EINVAL;
    }
    char why[400];
    int rc = tools_validate(tools_schema_of(def), doc, why, sizeof why);
    if (rc != SOUK_OK) {
        json_decref(doc);
        snprintf(err, errlen, "Invalid arguments for %s: %s.", def->name, why);
        return SOUK_EINVAL;
    }
    *args = doc;
    return SOUK_OK;
}
