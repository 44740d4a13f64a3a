/* souk dynamo: a small client for DynamoDB's JSON API (version 20120810).
 *
 * One request is one HTTPS POST of a JSON document, signed by libcurl's own
 * AWS SigV4 ("aws:amz:REGION:dynamodb"). Credentials and region come from
 * the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, AWS_REGION or AWS_DEFAULT_REGION); DYNAMODB_ENDPOINT
 * points at a local endpoint (dynalite, DynamoDB Local), where dummy
 * credentials and us-east-1 are used when none are set. A handle keeps one
 * connection alive; it belongs to one thread and must not cross fork().
 *
 * Errors, once for the module: functions return SOUK_OK or a negative
 * souk/error.h code. Throttling (ProvisionedThroughputExceededException,
 * ThrottlingException, RequestLimitExceeded) and 5xx answers are retried
 * with jittered exponential back-off, then give SOUK_EBUSY; an endpoint
 * that cannot be reached (connect or transfer failure) is retried the same
 * way, then gives SOUK_EUNAVAIL. ConditionalCheckFailedException is
 * SOUK_ECONFLICT, ResourceNotFoundException SOUK_ECONFIG (the table is
 * missing: `souk db create`), ResourceInUseException SOUK_EEXISTS, a
 * ValidationException SOUK_EINVAL, bad credentials SOUK_EFORBIDDEN. The
 * text of the last error is in dynamo_last_error (never a secret). */
#ifndef SOUK_DYNAMO_H
#define SOUK_DYNAMO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dynamo_s dynamo_t;

/* Operations and capacity, counted per handle: what DynamoDB bills. */
typedef struct {
    uint64_t requests;          /* HTTP requests sent, retries included */
    uint64_t retries;           /* of which retries (throttling, 5xx, unreachable) */
    uint64_t reads;             /* GetItem, Query, Scan, DescribeTable requests */
    uint64_t writes;            /* PutItem, UpdateItem, DeleteItem requests; items of a BatchWriteItem */
    double read_units;          /* ConsumedCapacity reported by the service (0 when it reports none) */
    double write_units;
} dynamo_stats_t;

/* Opens a client from the environment (see above). SOUK_ECONFIG with a
 * sentence in err when no region or no credentials can be found for a
 * remote endpoint; SOUK_EUNAVAIL when libcurl cannot be loaded. */
int dynamo_open(dynamo_t **out, char *err, size_t errlen);
/* Closes and sets *self_p to NULL; NULL or *NULL is a no-op. */
void dynamo_close(dynamo_t **self_p);

/* Sends operation op ("PutItem") with request body req (only read). On
 * SOUK_OK *resp (may be NULL) receives the parsed answer, which the caller
 * releases with json_decref. On an error *resp is NULL. */
int dynamo_call(dynamo_t *self, const char *op, json_t *req, json_t **resp);

/* The last error's text; never NULL, valid until the next call. */
const char *dynamo_last_error(const dynamo_t *self);
/* The handle's counters since it was opened. */
void dynamo_stats(const dynamo_t *self, dynamo_stats_t *out);
/* The endpoint URL in use ("https://dynamodb.eu-west-1.amazonaws.com"). */
const char *dynamo_endpoint(const dynamo_t *self);

/* ---- attribute values: {"S": ...}, {"N": "..."}, {"BOOL": ...} ---------- */

/* New references; dynamo_s(NULL) is NULL (json_object_set_new then fails
 * harmlessly, so optional attributes are simply left out by dynamo_set). */
json_t *dynamo_s(const char *s);
json_t *dynamo_n(int64_t n);
json_t *dynamo_bool(int b);
/* Sets item[name] = value (stealing it) unless value is NULL. */
void dynamo_set(json_t *item, const char *name, json_t *value);
/* A string attribute of item, or NULL when absent or not a string. */
const char *dynamo_get_s(const json_t *item, const char *name);
/* A number attribute of item, or dflt when absent. */
int64_t dynamo_get_n(const json_t *item, const char *name, int64_t dflt);
/* A boolean attribute, or 0 when absent. */
int dynamo_get_bool(const json_t *item, const char *name);

#endif
