/* The DynamoDB store's request helpers: keys, expression values, and the
 * four item calls and the paged Query that every access pattern in
 * src/store_dynamo.c is written with (see src/store_dynamo_io.h). */
#include "store_dynamo_io.h"
#include "souk/error.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *ddb_cat(char *buf, size_t len, const char *a, const char *b)
{
    snprintf(buf, len, "%s%s", a, b);
    return buf;
}

int ddb_read(store_impl_t *h, const char *pk, const char *sk,
             int (*from)(const json_t *it, void *row), void *row)
{
    json_t *it;
    int rc = ddb_get(h, pk, sk, &it);
    if (rc == SOUK_OK) {
        rc = from(it, row);
        json_decref(it);
    }
    return rc;
}

void ddb_pad(char *buf, size_t len, int64_t n)
{
    snprintf(buf, len, "%020" PRId64, n < 0 ? 0 : n);
}

int64_t ddb_arrival_ns(void)
{
    static int64_t last;        /* strictly increasing within the process, across threads */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
    int64_t seen = __atomic_load_n(&last, __ATOMIC_RELAXED);
    do {
        if (now <= seen)
            now = seen + 1;
    } while (!__atomic_compare_exchange_n(&last, &seen, now, false, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    return now;
}

void ddb_time_key(char *buf, size_t len, int64_t ms)
{
    char a[24], b[24];
    ddb_pad(a, sizeof a, ms);
    ddb_pad(b, sizeof b, ddb_arrival_ns());
    snprintf(buf, len, "%s#%s", a, b);
}

json_t *ddb_key(const char *pk, const char *sk)
{
    return json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", pk, "sk", "S", sk);
}

json_t *ddb_item(const char *pk, const char *sk)
{
    return ddb_key(pk, sk);
}

json_t *ddb_vals(const char *name, ...)
{
    json_t *o = json_object();
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *)) {
        json_t *v = va_arg(ap, json_t *);
        if (v)
            json_object_set_new(o, n, v);
    }
    va_end(ap);
    return o;
}

int ddb_err(store_impl_t *h, int rc)
{
    snprintf(h->errmsg, sizeof h->errmsg, "%s", dynamo_last_error(h->ddb));
    return rc;
}

int ddb_call(store_impl_t *h, const char *op, json_t *req, json_t **resp)
{
    if (resp)
        *resp = NULL;
    if (!req)
        return SOUK_ENOMEM;
    int rc = dynamo_call(h->ddb, op, req, resp);
    json_decref(req);
    if (rc != SOUK_OK && rc != SOUK_ECONFLICT)
        ddb_err(h, rc);
    return rc;
}

static json_t *s_request(store_impl_t *h)
{
    return json_pack("{s:s}", "TableName", h->table);
}

/* Adds the optional parts of a conditional request; steals names and vals. */
static void s_condition(json_t *req, const char *cond, json_t *names, json_t *vals)
{
    if (cond)
        json_object_set_new(req, "ConditionExpression", json_string(cond));
    if (names && json_object_size(names))
        json_object_set(req, "ExpressionAttributeNames", names);
    if (vals && json_object_size(vals))
        json_object_set(req, "ExpressionAttributeValues", vals);
    json_decref(names);
    json_decref(vals);
}

int ddb_get(store_impl_t *h, const char *pk, const char *sk, json_t **item)
{
    json_t *req = s_request(h);
    json_object_set_new(req, "Key", ddb_key(pk, sk));
    json_object_set_new(req, "ConsistentRead", json_true());
    json_t *resp;
    int rc = ddb_call(h, "GetItem", req, &resp);
    if (rc != SOUK_OK)
        return rc;
    json_t *it = json_object_get(resp, "Item");
    if (!json_is_object(it)) {
        json_decref(resp);
        return SOUK_ENOTFOUND;
    }
    *item = json_incref(it);
    json_decref(resp);
    return SOUK_OK;
}

int ddb_put(store_impl_t *h, json_t *item, const char *cond, json_t *names, json_t *vals)
{
    json_t *req = s_request(h);
    json_object_set_new(req, "Item", item);
    s_condition(req, cond, names, vals);
    return ddb_call(h, "PutItem", req, NULL);
}

int ddb_update(store_impl_t *h, const char *pk, const char *sk, const char *update,
               const char *cond, json_t *names, json_t *vals, json_t **attrs)
{
    json_t *req = s_request(h);
    json_object_set_new(req, "Key", ddb_key(pk, sk));
    json_object_set_new(req, "UpdateExpression", json_string(update));
    s_condition(req, cond, names, vals);
    if (attrs)
        json_object_set_new(req, "ReturnValues", json_string("ALL_NEW"));
    json_t *resp;
    int rc = ddb_call(h, "UpdateItem", req, attrs ? &resp : NULL);
    if (rc == SOUK_OK && attrs) {
        *attrs = json_incref(json_object_get(resp, "Attributes"));
        json_decref(resp);
        if (!*attrs)
            return SOUK_EPROTO;
    }
    return rc;
}

int ddb_delete(store_impl_t *h, const char *pk, const char *sk, const char *cond, json_t *names,
               json_t *vals)
{
    json_t *req = s_request(h);
    json_object_set_new(req, "Key", ddb_key(pk, sk));
    s_condition(req, cond, names, vals);
    return ddb_call(h, "DeleteItem", req, NULL);
}

int ddb_query(store_impl_t *h, const char *index, const char *keycond, json_t *vals, bool forward,
              int page, int limit, ddb_item_cb cb, void *arg)
{
    json_t *start = NULL;
    int rc = SOUK_OK, seen = 0;
    bool more = true;
    while (more && rc == SOUK_OK) {
        json_t *req = s_request(h);
        if (index)
            json_object_set_new(req, "IndexName", json_string(index));
        /* the table and its LSI read consistently; GSIs cannot */
        if (!index || strcmp(index, DDB_RECENT) == 0)
            json_object_set_new(req, "ConsistentRead", json_true());
        json_object_set_new(req, "KeyConditionExpression", json_string(keycond));
        json_object_set(req, "ExpressionAttributeValues", vals);
        json_object_set_new(req, "ScanIndexForward", json_boolean(forward));
        int want = limit && limit - seen < page ? limit - seen : page;
        json_object_set_new(req, "Limit", json_integer(want));
        if (start)
            json_object_set_new(req, "ExclusiveStartKey", start);
        start = NULL;
        json_t *resp;
        rc = ddb_call(h, "Query", req, &resp);
        if (rc != SOUK_OK)
            break;
        json_t *items = json_object_get(resp, "Items");
        start = json_incref(json_object_get(resp, "LastEvaluatedKey"));
        more = start != NULL;
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it) {
            int c = cb(h, it, arg);
            seen++;
            if (c != 0) {
                rc = c < 0 ? c : SOUK_OK;
                more = false;
                break;
            }
        }
        if (limit && seen >= limit)
            more = false;
        json_decref(resp);
    }
    json_decref(start);
    json_decref(vals);
    return rc;
}

char *ddb_dup(const json_t *item, const char *name, int *rc)
{
    const char *s = dynamo_get_s(item, name);
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *rc = SOUK_ENOMEM;
    return d;
}
