/* The shop end to end, through the real HTTP webhook: souk serve with every
 * actor and the built-in agent, its data folder prepared with `souk import`
 * before it starts. Every conversation is checked twice: on what the user
 * is told (the inline TwiML, or an "outbound" event of the console sender
 * for what was acknowledged first) and on what the store holds afterwards
 * (`souk orders --json`, `souk tickets --json`, `souk products --json`).
 *
 * Routing as designed: searches, order status and general questions are
 * answered inline; placing or cancelling an order and opening a ticket are
 * acknowledged inline ("later") and answered through the sender.
 *
 * The store is SOUK_TEST_STORE's: SQLite, or DynamoDB on a dynalite this
 * test starts, one fresh table per test (meson runs both).
 *
 * One conversation runs with SOUK_VECTOR=pinecone against
 * tests/fakes/pinecone_fake.py, a local fake of Pinecone's cloud API
 * following its documented request and response shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "assert_text.h"
#include "dynalite.h"
#include "harness.h"
#include "pinecone_ctl.h"

#ifndef SOUK_SRC_DIR
#define SOUK_SRC_DIR "."
#endif

#define ANA "15550101001"
#define BILAL "15550101002"
#define MERCHANT "15550009999"
#define MASCARA "BEA-ESS-ESS-001"   /* Essence Mascara Lash Princess, $9.99, stock 99 */
#define LIPSTICK "BEA-CHI-LIP-004"  /* Red Lipstick, $12.99, stock 91 */
#define LAMP "TST-LAMP-1"           /* the small catalogue's last item */

#if defined(__SANITIZE_ADDRESS__)
#define WAIT_MS 30000
#define QUIET_MS 2500
#else
#define WAIT_MS 15000
#define QUIET_MS 1500
#endif

/* A small catalogue of our own: the lamp is the one left. */
static const char small_csv[] =
    "sku,name,description,price,currency,category,stock,brand\n"
    LAMP ",Brass Desk Lamp,A solid brass desk lamp with a warm light,24.50,USD,home,1,Lumen\n"
    "TST-TEA-2,Ceramic Teapot,A round ceramic teapot for four cups,31.25,USD,kitchen,3,Potter\n"
    "TST-CLOTH-3,Linen Tablecloth,A washed linen tablecloth,18.00,USD,home,5,Weave\n";

/* ---- the merchant's webhook: a tiny HTTP receiver -------------------------------------- */

typedef struct {
    int fd;
    int port;
    int wake[2];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    json_t *posts;      /* bodies received, parsed */
} hook_t;

/* Reads one request (headers, then Content-Length bytes); returns the body
 * (caller frees) or NULL. */
static char *s_read_request(int fd)
{
    char *buf = NULL, *body = NULL;
    size_t len = 0, cap = 0, head = 0, want = 0; /* head: header bytes, once known */
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(buf, cap);
            if (!grown)
                break;
            buf = grown;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n = poll(&p, 1, 5000) == 1 ? read(fd, buf + len, 4096) : -1;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        const char *end = head ? NULL : strstr(buf, "\r\n\r\n");
        if (end) {
            head = (size_t)(end - buf) + 4;
            for (const char *l = buf; l && l < buf + head; l = strchr(l, '\n')) {
                l += *l == '\n';
                if (strncasecmp(l, "content-length:", 15) == 0)
                    want = strtoul(l + 15, NULL, 10);
            }
        }
        if (head && len - head >= want) {
            body = strndup(buf + head, want);
            break;
        }
    }
    free(buf);
    return body;
}

static void *s_hook_loop(void *arg)
{
    hook_t *k = arg;
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
    for (;;) {
        struct pollfd p[2] = { { .fd = k->fd, .events = POLLIN },
                               { .fd = k->wake[0], .events = POLLIN } };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!p[0].revents)
            continue;
        int c = accept(k->fd, NULL, NULL);
        if (c < 0)
            continue;
        char *body = s_read_request(c);
        if (body && write(c, ok, sizeof ok - 1) < 0)
            fprintf(stderr, "hook: could not answer\n");
        close(c);
        if (!body)
            continue;
        pthread_mutex_lock(&k->mu);
        json_t *doc = json_loads(body, 0, NULL);
        json_array_append_new(k->posts, doc ? doc : json_string(body));
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
        free(body);
    }
    return NULL;
}

static void hook_start(hook_t *k)
{
    memset(k, 0, sizeof *k);
    k->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    assert_int_equal(bind(k->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(k->fd, 16), 0);
    assert_int_equal(getsockname(k->fd, (struct sockaddr *)&a, &alen), 0);
    k->port = ntohs(a.sin_port);
    assert_int_equal(pipe(k->wake), 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&k->mu, NULL);
    k->posts = json_array();
    assert_int_equal(pthread_create(&k->thread, NULL, s_hook_loop, k), 0);
}

static void hook_stop(hook_t *k)
{
    assert_int_equal(write(k->wake[1], "x", 1), 1);
    pthread_join(k->thread, NULL);
    close(k->fd);
    close(k->wake[0]);
    close(k->wake[1]);
    json_decref(k->posts);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
}

/* Waits until the hook has received at least n posts, up to timeout_ms;
 * returns how many it has. */
static size_t hook_wait(hook_t *k, size_t n, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&k->mu);
    while (json_array_size(k->posts) < n)
        if (pthread_cond_timedwait(&k->cv, &k->mu, &until) == ETIMEDOUT)
            break;
    size_t got = json_array_size(k->posts);
    pthread_mutex_unlock(&k->mu);
    return got;
}

/* How many posts carry event `event` about id (order or ticket). */
static int hook_count(hook_t *k, const char *event, const char *id)
{
    int n = 0;
    pthread_mutex_lock(&k->mu);
    size_t i;
    json_t *p;
    json_array_foreach(k->posts, i, p) {
        const char *e = json_string_value(json_object_get(p, "event"));
        json_t *what = json_object_get(p, strncmp(event, "ticket", 6) == 0 ? "ticket" : "order");
        const char *oid = json_string_value(json_object_get(what, "order_id"));
        const char *tid = json_string_value(json_object_get(what, "ticket_id"));
        if (e && strcmp(e, event) == 0
            && ((oid && strcmp(oid, id) == 0) || (tid && strcmp(tid, id) == 0)))
            n++;
    }
    pthread_mutex_unlock(&k->mu);
    return n;
}

/* ---- the shop: souk serve with a catalogue, and what it sent ------------------------- */

typedef struct {
    char *to;           /* digits of the address */
    char *key;          /* outbox key */
    char *body;
    bool taken;         /* a wait_out returned it already */
} out_t;

typedef struct {
    harness_t h;
    bool started;       /* prepared and not stopped yet */
    out_t out[256];     /* every outbound event seen, in order */
    size_t n_out;
    char *said;         /* the last inline message, for the caller */
    hook_t hook;        /* the merchant's webhook, when a test starts it */
    bool hook_started;
} shop_t;

static void s_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Imports `csv` (a catalogue as text) into the shop's data folder. */
static void shop_import_csv(shop_t *s, const char *csv)
{
    static int n;
    char path[160], args[200];
    snprintf(path, sizeof path, "%s/import-%d.csv", s->h.data, ++n);
    s_write_file(path, csv);
    snprintf(args, sizeof args, "import %s", path);
    assert_int_equal(harness_cli(&s->h, args, NULL), 0);
}

/* Starts souk with the built-in agent, no debounce, and the demo catalogue
 * (demo) and/or the small one (csv, may be NULL) imported before serve. */
static void shop_start(shop_t *s, bool demo, const char *csv, const char *const *extra)
{
    assert_int_equal(harness_prepare(&s->h), 0);
    s->started = true;          /* from here on, teardown stops it */
    /* `souk db create` as a user runs it: on DynamoDB the table exists
     * already (made by the test), which is fine */
    assert_int_equal(harness_cli(&s->h, "db create", NULL), 0);
    if (demo)
        assert_int_equal(harness_cli(&s->h, "import " SOUK_SRC_DIR "/data/demo/products.jsonl",
                                     NULL), 0);
    if (csv)
        shop_import_csv(s, csv);
    const char *env[16] = { "SOUK_AGENT=builtin", "SOUK_DEBOUNCE_MS=0" };
    size_t n = 2;
    for (const char *const *e = extra; e && *e && n + 1 < sizeof env / sizeof *env; e++)
        env[n++] = *e;
    env[n] = NULL;
    assert_int_equal(harness_start_prepared(&s->h, env), 0);
    assert_int_equal(harness_events_join(&s->h, 5000), 0);
}

/* Stops souk: it must exit 0. */
static void shop_stop(shop_t *s)
{
    int code = harness_stop(&s->h, false);
    s->started = false;
    assert_int_equal(code, 0);
}

static int s_setup(void **state)
{
    if (dynalite_fresh_table() != 0)
        return -1;
    *state = calloc(1, sizeof(shop_t));
    return *state ? 0 : -1;
}

/* After a failed test souk may still be running: stopped here, its data
 * folder (serve.log, cli.log) kept for a look. */
static int s_teardown(void **state)
{
    shop_t *s = *state;
    if (s->started) {
        fprintf(stderr, "after a failure: souk stopped, its data folder kept: %s\n", s->h.data);
        harness_stop(&s->h, true);
    }
    if (s->hook_started)
        hook_stop(&s->hook);
    for (size_t i = 0; i < s->n_out; i++) {
        free(s->out[i].to);
        free(s->out[i].key);
        free(s->out[i].body);
    }
    free(s->said);
    free(s);
    return 0;
}

/* Takes the next outbound event into s->out; false after timeout_ms. */
static bool s_pull(shop_t *s, int timeout_ms)
{
    souk_msg_t m;
    if (harness_wait_event(&s->h, "outbound", NULL, timeout_ms, &m) != 0)
        return false;
    json_t *d = json_loads(m.event.detail, 0, NULL);
    souk_msg_clear(&m);
    const char *to = json_string_value(json_object_get(d, "to"));
    const char *key = json_string_value(json_object_get(d, "key"));
    const char *body = json_string_value(json_object_get(d, "body"));
    assert_non_null(to);
    assert_non_null(body);
    if (strncmp(to, "whatsapp:", 9) == 0)
        to += 9;
    if (*to == '+')
        to++;
    assert_true(s->n_out < sizeof s->out / sizeof *s->out);
    s->out[s->n_out++] = (out_t) { .to = strdup(to), .key = strdup(key ? key : ""),
                                   .body = strdup(body) };
    json_decref(d);
    return true;
}

static bool s_matches(const out_t *o, const char *to, const char *needle)
{
    return strcmp(o->to, to) == 0 && (!needle || strstr(o->body, needle));
}

/* The first outbound message to `to` (digits) containing needle (NULL: any)
 * not returned before, waiting up to timeout_ms; NULL on time-out. The shop
 * owns the text. */
static const char *wait_out(shop_t *s, const char *to, const char *needle, int timeout_ms)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    size_t i = 0;
    for (;;) {
        for (; i < s->n_out; i++)
            if (!s->out[i].taken && s_matches(&s->out[i], to, needle)) {
                s->out[i].taken = true;
                return s->out[i].body;
            }
        int64_t left = deadline - zclock_mono();
        if (left <= 0 || !s_pull(s, (int)left))
            return NULL;
    }
}

/* Collects outbound events for ms (to see that nothing more comes). */
static void settle(shop_t *s, int ms)
{
    int64_t deadline = zclock_mono() + ms;
    for (int64_t left = ms; left > 0; left = deadline - zclock_mono())
        if (!s_pull(s, (int)left))
            break;
}

/* How many outbound messages had the outbox key `key` ("r:<MessageSid>"
 * for the answer to that message). */
static int count_key(const shop_t *s, const char *key)
{
    int n = 0;
    for (size_t i = 0; i < s->n_out; i++)
        n += strcmp(s->out[i].key, key) == 0;
    return n;
}

/* How many outbound messages to `to` contain needle (NULL: all). */
static int count_out(const shop_t *s, const char *to, const char *needle)
{
    int n = 0;
    for (size_t i = 0; i < s->n_out; i++)
        n += s_matches(&s->out[i], to, needle);
    return n;
}

/* Sends text from waid; the answer must be `answer` (inline, later, none).
 * Returns the TwiML message (the shop owns it; NULL for none). sid: NULL
 * for a fresh MessageSid, else the one to (re)send; sid_out may be NULL. */
static const char *send_as(shop_t *s, const char *waid, const char *text, const char *answer,
                           const char *sid, char sid_out[35])
{
    harness_reply_t r;
    const char *name = strcmp(waid, BILAL) == 0 ? "Bilal" : "Ana";
    assert_int_equal(harness_send(&s->h, waid, name, text, sid, sid_out, &r), 0);
    if (r.status != 200 || strcmp(r.answer, answer) != 0)
        fail_msg("\"%s\": HTTP %ld, answer \"%s\" (wanted %s):\n%s", text, r.status, r.answer,
                 answer, r.body);
    free(s->said);
    s->said = r.message ? strdup(r.message) : NULL;
    harness_reply_clear(&r);
    if (strcmp(answer, "none") == 0)
        assert_null(s->said);
    else
        assert_non_null(s->said);
    return s->said;
}

/* A read-only turn: answered inline. */
static const char *say(shop_t *s, const char *waid, const char *text)
{
    return send_as(s, waid, text, "inline", NULL, NULL);
}

/* A turn that changes something: acknowledged with `ack` inline, then the
 * answer to waid through the sender (returned; the shop owns it). */
static const char *say_later(shop_t *s, const char *waid, const char *text, const char *ack,
                             char sid_out[35])
{
    assert_has(send_as(s, waid, text, "later", NULL, sid_out), ack);
    const char *body = wait_out(s, waid, NULL, WAIT_MS);
    if (!body)
        fail_msg("no answer to \"%s\" through the sender (log: %s)", text, s->h.log_path);
    return body;
}

/* ---- the store, as the merchant sees it -------------------------------------------- */

/* `souk orders --json` of user waid (NULL: everyone's), newest last as
 * listed; caller decrefs. */
static json_t *orders_of(shop_t *s, const char *waid)
{
    json_t *doc = harness_cli_json(&s->h, "orders --json");
    assert_non_null(doc);
    json_t *all = json_object_get(doc, "orders"), *mine = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o)
        if (!waid || strcmp(json_string_value(json_object_get(o, "user")), waid) == 0)
            json_array_append(mine, o);
    json_decref(doc);
    return mine;
}

static int order_count(shop_t *s, const char *waid)
{
    json_t *l = orders_of(s, waid);
    int n = (int)json_array_size(l);
    json_decref(l);
    return n;
}

/* The one order of waid (asserts there is exactly one); caller decrefs. */
static json_t *the_order(shop_t *s, const char *waid)
{
    json_t *l = orders_of(s, waid);
    assert_int_equal(json_array_size(l), 1);
    json_t *o = json_incref(json_array_get(l, 0));
    json_decref(l);
    return o;
}

static const char *str_of(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    assert_non_null(v);
    return v;
}

static int qty_in(const json_t *order, const char *sku)
{
    size_t i;
    json_t *it;
    int q = 0;
    json_array_foreach(json_object_get(order, "items"), i, it)
        if (strcmp(str_of(it, "sku"), sku) == 0)
            q += (int)json_integer_value(json_object_get(it, "quantity"));
    return q;
}

static json_t *tickets_of(shop_t *s, const char *waid)
{
    json_t *doc = harness_cli_json(&s->h, "tickets --json");
    assert_non_null(doc);
    json_t *mine = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(doc, "tickets"), i, t)
        if (strcmp(str_of(t, "user"), waid) == 0)
            json_array_append(mine, t);
    json_decref(doc);
    return mine;
}

/* A product of `souk products --json` (caller decrefs), or NULL. */
static json_t *product(shop_t *s, const char *sku)
{
    json_t *doc = harness_cli_json(&s->h, "products --json");
    assert_non_null(doc);
    json_t *found = NULL;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(doc, "products"), i, p)
        if (strcmp(str_of(p, "sku"), sku) == 0)
            found = json_incref(p);
    json_decref(doc);
    return found;
}

static int64_t stock_of(shop_t *s, const char *sku)
{
    json_t *p = product(s, sku);
    assert_non_null(p);
    int64_t n = json_integer_value(json_object_get(p, "stock"));
    json_decref(p);
    return n;
}

/* ---- reading replies ------------------------------------------------------------------ */

/* "$1,299.50" at p (after the '$') as cents. */
static int64_t s_cents_at(const char *p)
{
    int64_t units = 0, cents = 0;
    for (; isdigit((unsigned char)*p) || *p == ','; p++)
        if (*p != ',')
            units = units * 10 + (*p - '0');
    if (*p == '.' && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]))
        cents = (p[1] - '0') * 10 + (p[2] - '0');
    return units * 100 + cents;
}

static void s_money(int64_t cents, char *buf, size_t len)
{
    snprintf(buf, len, "$%lld.%02lld", (long long)(cents / 100), (long long)(cents % 100));
}

/* Whether a numbered list has an item n ("n. *Name*"). */
static bool has_item(const char *reply, int n)
{
    char head[16];
    snprintf(head, sizeof head, "%d. *", n);
    return strstr(reply, head) != NULL;
}

/* Item n (1-based) of a numbered list "n. *Name* — $X.XX": its name and
 * price. Fails the test when the reply has no such line. */
static void list_item(const char *reply, int n, char *name, size_t len, int64_t *cents)
{
    char head[16];
    snprintf(head, sizeof head, "%d. *", n);
    const char *p = strstr(reply, head);
    if (!p)
        fail_msg("no item %d in:\n%s", n, reply);
    p += strlen(head);
    const char *end = strchr(p, '*');
    assert_non_null(end);
    snprintf(name, len, "%.*s", (int)(end - p), p);
    const char *dollar = strchr(end, '$');
    assert_non_null(dollar);
    *cents = s_cents_at(dollar + 1);
}

/* The order id (SK-XXXXX) in text, or "" (static). */
static const char *order_id_in(const char *text)
{
    static char id[16];
    const char *p = text ? strstr(text, "SK-") : NULL;
    snprintf(id, sizeof id, "%.8s", p ? p : "");
    return id;
}

/* ---- common conversations --------------------------------------------------------------- */

/* waid orders n Essence mascaras: confirmation, YES, the placed reply.
 * Returns the order id (static). */
static const char *order_mascaras(shop_t *s, const char *waid, int n)
{
    static char id[16];
    char text[64];
    snprintf(text, sizeof text, "I'll take %d Essence mascaras", n);
    assert_has(say(s, waid, text), "Reply YES to confirm");
    const char *placed = say_later(s, waid, "YES", "placing your order", NULL);
    assert_has(placed, "is placed");
    snprintf(id, sizeof id, "%s", order_id_in(placed));
    assert_int_equal(strlen(id), 8);
    return id;
}

/* pids of the tool actors, from `souk status --json`; returns how many. */
static int tool_pids(shop_t *s, pid_t *pids, int cap)
{
    json_t *st = harness_status(&s->h);
    assert_non_null(st);
    int n = 0;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(st, "actors"), i, a)
        if (strcmp(str_of(a, "role"), "tool") == 0 && n < cap)
            pids[n++] = (pid_t)json_integer_value(json_object_get(a, "pid"));
    json_decref(st);
    return n;
}

/* ---- the conversations ------------------------------------------------------------------- */

/* search, cheaper, "the second one", "actually make it three", NO, YES:
 * one order with the store's total; status and small talk inline. */
static void test_search_to_order(void **state)
{
    shop_t *s = *state;
    shop_start(s, true, NULL, NULL);
    assert_has(say(s, ANA, "hello"), "Hi Ana!");

    const char *r = say(s, ANA, "show me groceries");
    assert_has(r, "1. *");
    assert_has(r, "2. *");
    int64_t cheapest = INT64_MAX;
    for (int i = 1; has_item(r, i); i++) {
        char name[128];
        int64_t cents;
        list_item(r, i, name, sizeof name, &cents);
        cheapest = cents < cheapest ? cents : cheapest;
    }

    r = say(s, ANA, "show me cheaper ones");
    assert_has(r, "Cheaper options");
    char name[128];
    int64_t unit;
    for (int i = 1; has_item(r, i); i++) {
        list_item(r, i, name, sizeof name, &unit);
        assert_true(unit < cheapest);
    }
    list_item(r, 2, name, sizeof name, &unit);

    /* "the second one": exactly that product, at its price */
    char want[256], money[32];
    r = say(s, ANA, "the second one");
    s_money(unit, money, sizeof money);
    snprintf(want, sizeof want, "1 \u00d7 *%s* = %s", name, money);
    assert_has(r, want);
    assert_has(r, "Reply YES to confirm or NO to cancel");

    r = say(s, ANA, "actually make it three");
    s_money(3 * unit, money, sizeof money);
    snprintf(want, sizeof want, "3 \u00d7 *%s* = %s", name, money);
    assert_has(r, want);

    /* NO places nothing, and a YES after it neither */
    assert_has(say(s, ANA, "no"), "haven't ordered anything");
    assert_has(say(s, ANA, "yes"), "nothing waiting");
    assert_int_equal(order_count(s, NULL), 0);

    /* again, and this time YES */
    say(s, ANA, "the second one");
    assert_has(say(s, ANA, "actually make it three"), want);
    char yes_sid[35];
    const char *placed = say_later(s, ANA, "YES", "placing your order", yes_sid);
    assert_has(placed, "is placed");
    char id[16];
    snprintf(id, sizeof id, "%s", order_id_in(placed));

    json_t *o = the_order(s, ANA);
    assert_string_equal(str_of(o, "id"), id);
    assert_string_equal(str_of(o, "status"), "pending");
    json_t *item = json_array_get(json_object_get(o, "items"), 0);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    assert_string_equal(str_of(item, "name"), name);
    char sku[64];
    snprintf(sku, sizeof sku, "%s", str_of(item, "sku"));
    assert_int_equal(qty_in(o, sku), 3);
    json_t *p = product(s, sku);
    int64_t store_unit = json_integer_value(json_object_get(p, "price_cents"));
    json_decref(p);
    assert_int_equal(store_unit, unit);
    int64_t total = json_integer_value(json_object_get(o, "total_cents"));
    assert_int_equal(total, 3 * store_unit);
    s_money(total, money, sizeof money);
    assert_has(placed, money);
    json_decref(o);

    /* status: inline, this order */
    r = say(s, ANA, "where is my order?");
    assert_has(r, id);
    assert_has(r, "being prepared");
    assert_has(r, money);
    /* a second YES confirms nothing */
    assert_has(say(s, ANA, "yes"), "nothing waiting");
    /* a general question, inline */
    assert_has(say(s, ANA, "thanks!"), "You're welcome");
    settle(s, QUIET_MS);
    assert_int_equal(order_count(s, NULL), 1);
    assert_int_equal(count_out(s, ANA, "is placed"), 1);
    char key[40];
    snprintf(key, sizeof key, "r:%s", yes_sid);
    assert_int_equal(count_key(s, key), 1);
    shop_stop(s);
}

/* Two products in one order; the store's total; stock taken from both. */
static void test_several_items(void **state)
{
    shop_t *s = *state;
    shop_start(s, true, NULL, NULL);
    say(s, ANA, "show me makeup");
    /* a question about the shop's terms: answered inline from the catalogue */
    const char *r = say(s, ANA, "can I return the red lipstick?");
    assert_has(r, "*Red Lipstick*");
    assert_has(r, "return policy");
    r = say(s, ANA, "2 mascaras and 1 lipstick");
    assert_has(r, "2 \u00d7 *Essence Mascara Lash Princess* \u2014 $19.98");
    assert_has(r, "1 \u00d7 *Red Lipstick* \u2014 $12.99");
    assert_has(r, "Total: *$32.97*");
    const char *placed = say_later(s, ANA, "yes", "placing your order", NULL);
    assert_has(placed, "is placed");
    assert_has(placed, "$32.97");
    json_t *o = the_order(s, ANA);
    assert_string_equal(str_of(o, "id"), order_id_in(placed));
    assert_int_equal(json_array_size(json_object_get(o, "items")), 2);
    assert_int_equal(qty_in(o, MASCARA), 2);
    assert_int_equal(qty_in(o, LIPSTICK), 1);
    assert_int_equal(json_integer_value(json_object_get(o, "total_cents")), 3297);
    json_decref(o);
    assert_int_equal(stock_of(s, MASCARA), 97);
    assert_int_equal(stock_of(s, LIPSTICK), 90);
    shop_stop(s);
}

/* The stock runs out between the confirmation and the YES (the merchant
 * imports the product again with stock 0): said plainly, nothing ordered. */
static void test_stock_runs_out(void **state)
{
    shop_t *s = *state;
    shop_start(s, false, small_csv, NULL);
    const char *r = say(s, ANA, "do you have a desk lamp?");
    assert_has(r, "*Brass Desk Lamp*");
    r = say(s, ANA, "I'll take the brass desk lamp");
    assert_has(r, "1 \u00d7 *Brass Desk Lamp* = $24.50");
    shop_import_csv(s, "sku,name,description,price,currency,category,stock,brand\n"
                        LAMP ",Brass Desk Lamp,A solid brass desk lamp with a warm light,"
                        "24.50,USD,home,0,Lumen\n");
    assert_int_equal(stock_of(s, LAMP), 0);
    r = say_later(s, ANA, "YES", "placing your order", NULL);
    assert_has(r, "Nothing was ordered");
    assert_has(r, "out of stock");
    assert_lacks(r, "SK-");
    assert_int_equal(order_count(s, NULL), 0);
    assert_int_equal(stock_of(s, LAMP), 0);
    /* asked for again: no confirmation at all */
    r = say(s, ANA, "I'll take the brass desk lamp");
    assert_has(r, "out of stock");
    assert_lacks(r, "Reply YES");
    settle(s, QUIET_MS / 3);
    assert_int_equal(order_count(s, NULL), 0);
    shop_stop(s);
}

/* Two users confirm the last lamp and say YES at the same moment: exactly
 * one order, the other told it is out of stock. Several rounds, the lamp
 * restocked to 1 by an import before each. */
#define RACE_ROUNDS 3

typedef struct {
    shop_t *s;
    const char *waid;
    pthread_barrier_t *go;
    harness_reply_t r;
} yes_run_t;

static void *s_say_yes(void *arg)
{
    yes_run_t *y = arg;
    pthread_barrier_wait(y->go);
    harness_send(&y->s->h, y->waid, "Someone", "YES", NULL, NULL, &y->r);
    return NULL;
}

/* One round: both confirm, both say YES at once. */
static void s_race_round(shop_t *s, const char *const who[2])
{
    for (int i = 0; i < 2; i++)
        assert_has(say(s, who[i], "I'll take the brass desk lamp"),
                   "1 \u00d7 *Brass Desk Lamp* = $24.50");
    int before[2] = { order_count(s, who[0]), order_count(s, who[1]) };
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    yes_run_t runs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        runs[i] = (yes_run_t) { .s = s, .waid = who[i], .go = &go };
        assert_int_equal(pthread_create(&th[i], NULL, s_say_yes, &runs[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    int winners = 0, losers = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(runs[i].r.status, 200);
        assert_string_equal(runs[i].r.answer, "later");
        harness_reply_clear(&runs[i].r);
        const char *body = wait_out(s, who[i], NULL, WAIT_MS);
        assert_non_null(body);
        json_t *l = orders_of(s, who[i]);
        if (strstr(body, "is placed")) {
            winners++;
            assert_int_equal(json_array_size(l), before[i] + 1);
            json_t *o = json_array_get(l, 0);
            size_t k;
            json_array_foreach(l, k, o)
                if (strcmp(str_of(o, "id"), order_id_in(body)) == 0)
                    break;
            assert_true(k < json_array_size(l));
            assert_int_equal(qty_in(o, LAMP), 1);
            assert_int_equal(json_integer_value(json_object_get(o, "total_cents")), 2450);
        } else {
            losers++;
            assert_has(body, "Nothing was ordered");
            assert_has(body, "out of stock");
            assert_int_equal(json_array_size(l), before[i]);
        }
        json_decref(l);
    }
    assert_int_equal(winners, 1);
    assert_int_equal(losers, 1);
    assert_int_equal(stock_of(s, LAMP), 0);
}

static void test_last_item_race(void **state)
{
    shop_t *s = *state;
    shop_start(s, false, small_csv, NULL);
    static const char *const who[2] = { ANA, BILAL };
    for (int round = 0; round < RACE_ROUNDS; round++) {
        if (round > 0)
            shop_import_csv(s, small_csv);
        s_race_round(s, who);
        assert_int_equal(order_count(s, NULL), round + 1);
    }
    shop_stop(s);
}

/* Cancelling: asked, acknowledged, confirmed, cancelled, stock back; a
 * complaint becomes a ticket with its id. */
static void test_cancel_and_ticket(void **state)
{
    shop_t *s = *state;
    shop_start(s, true, NULL, NULL);
    char id[16], text[128];
    snprintf(id, sizeof id, "%s", order_mascaras(s, ANA, 2));
    assert_int_equal(stock_of(s, MASCARA), 97);

    snprintf(text, sizeof text, "cancel my order %s", id);
    const char *r = say_later(s, ANA, text, "looking up your order", NULL);
    assert_has(r, id);
    assert_has(r, "Reply YES to cancel it");
    json_t *o = the_order(s, ANA);
    assert_string_equal(str_of(o, "status"), "pending");
    json_decref(o);
    r = say_later(s, ANA, "yes", "cancelling your order", NULL);
    assert_has(r, id);
    assert_has(r, "is cancelled");
    o = the_order(s, ANA);
    assert_string_equal(str_of(o, "status"), "cancelled");
    json_decref(o);
    assert_int_equal(stock_of(s, MASCARA), 99);
    snprintf(text, sizeof text, "status of %s please", id);
    assert_has(say(s, ANA, text), "cancelled");

    /* a complaint: a ticket, its id in the answer and in the store */
    snprintf(text, sizeof text, "my parcel arrived broken, order %s", id);
    r = say_later(s, ANA, text, "passing this on", NULL);
    assert_has(r, "TK-");
    assert_has(r, id);
    char tk[16];
    snprintf(tk, sizeof tk, "%.8s", strstr(r, "TK-"));
    json_t *tickets = tickets_of(s, ANA);
    assert_int_equal(json_array_size(tickets), 1);
    json_t *t = json_array_get(tickets, 0);
    assert_string_equal(str_of(t, "id"), tk);
    assert_string_equal(str_of(t, "order_id"), id);
    assert_string_equal(str_of(t, "status"), "open");
    assert_has(str_of(t, "message"), "arrived broken");
    json_decref(tickets);
    settle(s, QUIET_MS / 3);
    assert_int_equal(count_out(s, ANA, "TK-"), 1);
    shop_stop(s);
}

/* The merchant hears of a new order, a ticket and a cancellation on
 * WhatsApp and on the webhook, once each, even when the YES is replayed. */
static void test_merchant_notified(void **state)
{
    shop_t *s = *state;
    hook_t *hook = &s->hook;
    hook_start(hook);
    s->hook_started = true;
    char url[96];
    snprintf(url, sizeof url, "SOUK_MERCHANT_WEBHOOK=http://127.0.0.1:%d/hooks/souk", hook->port);
    const char *env[] = { "SOUK_MERCHANT_WHATSAPP=+" MERCHANT, url, NULL };
    shop_start(s, true, NULL, env);

    assert_has(say(s, ANA, "I'll take 2 Essence mascaras"), "Reply YES");
    char sid[35];
    const char *placed = say_later(s, ANA, "YES", "placing your order", sid);
    char id[16];
    snprintf(id, sizeof id, "%s", order_id_in(placed));
    assert_int_equal(strlen(id), 8);
    const char *note = wait_out(s, MERCHANT, id, WAIT_MS);
    assert_non_null(note);
    assert_has(note, "New order");
    assert_has(note, "Essence Mascara Lash Princess");
    assert_has(note, "$19.98");
    assert_int_equal(hook_wait(hook, 1, WAIT_MS), 1);
    assert_int_equal(hook_count(hook, "order.created", id), 1);
    pthread_mutex_lock(&hook->mu);
    json_t *post = json_deep_copy(json_array_get(hook->posts, 0));
    pthread_mutex_unlock(&hook->mu);
    json_t *order = json_object_get(post, "order");
    assert_string_equal(str_of(json_object_get(post, "customer"), "waid"), ANA);
    assert_string_equal(str_of(order, "order_id"), id);
    double total = json_number_value(json_object_get(order, "total"));
    assert_int_equal((int64_t)(total * 100 + 0.5), 1998);
    json_decref(post);

    /* Twilio retries the YES: nothing new anywhere */
    assert_null(send_as(s, ANA, "YES", "none", sid, NULL));

    /* a ticket: to the merchant too */
    const char *r = say_later(s, ANA, "the mascara arrived broken", "passing this on", NULL);
    char tk[16];
    snprintf(tk, sizeof tk, "%.8s", strstr(r, "TK-"));
    assert_has(wait_out(s, MERCHANT, tk, WAIT_MS), "New support ticket");
    assert_int_equal(hook_wait(hook, 2, WAIT_MS), 2);
    assert_int_equal(hook_count(hook, "ticket.created", tk), 1);

    /* a cancellation: the merchant hears of it too */
    char text[64];
    snprintf(text, sizeof text, "cancel %s", id);
    assert_has(say_later(s, ANA, text, "looking up your order", NULL), "Reply YES to cancel it");
    assert_has(say_later(s, ANA, "yes", "cancelling your order", NULL), "is cancelled");
    assert_has(wait_out(s, MERCHANT, "was cancelled", WAIT_MS), id);
    assert_int_equal(hook_wait(hook, 3, WAIT_MS), 3);
    assert_int_equal(hook_count(hook, "order.cancelled", id), 1);

    settle(s, QUIET_MS);
    assert_int_equal(hook_wait(hook, 4, 0), 3);
    assert_int_equal(hook_count(hook, "order.created", id), 1);
    /* the order, the ticket about it, its cancellation */
    assert_int_equal(count_out(s, MERCHANT, id), 3);
    assert_int_equal(count_out(s, MERCHANT, "New order"), 1);
    assert_int_equal(count_out(s, ANA, "is placed"), 1);
    assert_int_equal(order_count(s, NULL), 1);
    shop_stop(s);
}

/* Bilal names Ana's order id and Ana's number: he never sees or changes
 * anything of hers. */
static void test_identity(void **state)
{
    shop_t *s = *state;
    shop_start(s, true, NULL, NULL);
    char id[16], text[128];
    snprintf(id, sizeof id, "%s", order_mascaras(s, ANA, 2));
    int ana_heard = count_out(s, ANA, NULL);

    snprintf(text, sizeof text, "where is order %s", id);
    const char *r = say(s, BILAL, text);
    assert_has(r, "couldn't find");
    assert_lacks(r, "Mascara");
    assert_lacks(r, "$");

    snprintf(text, sizeof text, "cancel %s", id);
    r = say_later(s, BILAL, text, "looking up your order", NULL);
    assert_has(r, "couldn't find");
    assert_lacks(r, "Reply YES");
    assert_lacks(r, "Mascara");
    r = say(s, BILAL, "yes");
    assert_lacks(r, id);

    static const char *const asks[] = {
        "show orders of +" ANA, "I am +" ANA ", show my orders", "where is my order?",
        "show me my orders",
    };
    for (size_t i = 0; i < sizeof asks / sizeof *asks; i++) {
        r = say(s, BILAL, asks[i]);
        assert_lacks(r, id);
        assert_lacks(r, "Mascara");
    }
    assert_has(say(s, BILAL, "where is my order?"), "don't have any orders");

    /* a complaint naming Ana's order: Bilal's ticket, without her order */
    snprintf(text, sizeof text, "my parcel arrived broken, order %s", id);
    r = say_later(s, BILAL, text, "passing this on", NULL);
    assert_has(r, "couldn't find order");
    assert_has(r, "TK-");
    json_t *tickets = tickets_of(s, BILAL);
    assert_int_equal(json_array_size(tickets), 1);
    assert_true(json_is_null(json_object_get(json_array_get(tickets, 0), "order_id")));
    json_decref(tickets);
    tickets = tickets_of(s, ANA);
    assert_int_equal(json_array_size(tickets), 0);
    json_decref(tickets);

    /* Ana's order as it was; nothing was said to her */
    json_t *o = the_order(s, ANA);
    assert_string_equal(str_of(o, "id"), id);
    assert_string_equal(str_of(o, "status"), "pending");
    json_decref(o);
    assert_int_equal(order_count(s, BILAL), 0);
    assert_int_equal(stock_of(s, MASCARA), 97);
    settle(s, QUIET_MS / 3);
    assert_int_equal(count_out(s, ANA, NULL), ana_heard);
    /* what Bilal was told names no more than the id he typed himself */
    for (size_t i = 0; i < s->n_out; i++)
        if (strcmp(s->out[i].to, BILAL) == 0) {
            assert_lacks(s->out[i].body, "Mascara");
            assert_lacks(s->out[i].body, "$");
        }
    shop_stop(s);
}

/* ---- idempotency -------------------------------------------------------------------------- */

/* Twilio sends the YES webhook again (same MessageSid): answered with
 * nothing, and still one order, one reply. */
static void test_replayed_yes(void **state)
{
    shop_t *s = *state;
    shop_start(s, true, NULL, NULL);
    assert_has(say(s, ANA, "I'll take 2 Essence mascaras"), "Reply YES");
    char sid[35];
    assert_has(send_as(s, ANA, "YES", "later", NULL, sid), "placing your order");
    /* at once, while the order is being placed */
    assert_null(send_as(s, ANA, "YES", "none", sid, NULL));
    const char *placed = wait_out(s, ANA, "is placed", WAIT_MS);
    assert_non_null(placed);
    char id[16];
    snprintf(id, sizeof id, "%s", order_id_in(placed));
    /* and after it was answered */
    for (int i = 0; i < 2; i++)
        assert_null(send_as(s, ANA, "YES", "none", sid, NULL));
    settle(s, QUIET_MS);
    json_t *o = the_order(s, ANA);
    assert_string_equal(str_of(o, "id"), id);
    json_decref(o);
    assert_int_equal(count_out(s, ANA, NULL), 1);
    char key[40];
    snprintf(key, sizeof key, "r:%s", sid);
    assert_int_equal(count_key(s, key), 1);
    assert_int_equal(stock_of(s, MASCARA), 97);
    shop_stop(s);
}

/* One user's YES while the tool actors die: `pause` stops them first so the
 * place_order call is in flight when they are killed, otherwise they are
 * killed right after the acknowledgement. Exactly one order, one reply. */
static void s_yes_while_tools_die(shop_t *s, const char *waid, bool pause)
{
    assert_has(say(s, waid, "I'll take 2 Essence mascaras"), "Reply YES");
    pid_t pids[8];
    int n = tool_pids(s, pids, 8);
    assert_true(n >= 2);
    for (int i = 0; pause && i < n; i++)
        assert_int_equal(kill(pids[i], SIGSTOP), 0);
    assert_has(send_as(s, waid, "YES", "later", NULL, NULL), "placing your order");
    for (int i = 0; i < n; i++)
        assert_int_equal(kill(pids[i], SIGKILL), 0);
    const char *placed = wait_out(s, waid, "is placed", WAIT_MS);
    if (!placed)
        fail_msg("no placed reply for %s after the tool actors died (%zu outbound; log %s)",
                 waid, s->n_out, s->h.log_path);
    json_t *o = the_order(s, waid);
    assert_string_equal(str_of(o, "id"), order_id_in(placed));
    assert_int_equal(qty_in(o, MASCARA), 2);
    json_decref(o);
}

static void test_tool_actors_killed_mid_order(void **state)
{
    shop_t *s = *state;
    shop_start(s, true, NULL, NULL);
    s_yes_while_tools_die(s, ANA, true);
    s_yes_while_tools_die(s, BILAL, false);
    settle(s, QUIET_MS);
    assert_int_equal(order_count(s, NULL), 2);
    assert_int_equal(count_out(s, ANA, NULL), 1);
    assert_int_equal(count_out(s, BILAL, NULL), 1);
    assert_int_equal(stock_of(s, MASCARA), 95);
    /* the pool is whole again */
    assert_has(say(s, ANA, "show me lipstick"), "*Red Lipstick*");
    shop_stop(s);
}

/* The user's session actor is killed right after the YES was acknowledged:
 * with the tool actors paused (so its place_order is in flight, and runs
 * after the session died), and without. The restarted session answers the
 * YES from the store: exactly one order and exactly one "placed" reply. */
static void s_yes_while_session_dies(shop_t *s, const char *waid, bool pause_tools)
{
    assert_has(say(s, waid, "I'll take 2 Essence mascaras"), "Reply YES");
    char name[32];
    snprintf(name, sizeof name, "s-%s", waid);
    pid_t session = harness_actor_pid(&s->h, name);
    assert_true(session > 0);
    pid_t pids[8];
    int n = pause_tools ? tool_pids(s, pids, 8) : 0;
    for (int i = 0; i < n; i++)
        assert_int_equal(kill(pids[i], SIGSTOP), 0);
    char sid[35], key[40];
    assert_has(send_as(s, waid, "YES", "later", NULL, sid), "placing your order");
    assert_int_equal(kill(session, SIGKILL), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(kill(pids[i], SIGCONT), 0);
    const char *placed = wait_out(s, waid, "is placed", WAIT_MS);
    if (!placed)
        fail_msg("no placed reply for %s after its session died (%zu outbound; log %s)", waid,
                 s->n_out, s->h.log_path);
    json_t *o = the_order(s, waid);
    assert_string_equal(str_of(o, "id"), order_id_in(placed));
    json_decref(o);
    snprintf(key, sizeof key, "r:%s", sid);
    assert_int_equal(count_key(s, key), 1); /* the answer to that YES */
    assert_int_not_equal(harness_actor_pid(&s->h, name), session);
}

static void test_session_killed_mid_order(void **state)
{
    shop_t *s = *state;
    shop_start(s, true, NULL, NULL);
    s_yes_while_session_dies(s, ANA, true);
    s_yes_while_session_dies(s, BILAL, false);
    settle(s, QUIET_MS);
    assert_int_equal(order_count(s, ANA), 1);
    assert_int_equal(order_count(s, BILAL), 1);
    assert_int_equal(count_out(s, ANA, "is placed"), 1);
    assert_int_equal(count_out(s, BILAL, "is placed"), 1);
    assert_int_equal(count_out(s, ANA, NULL), 1);
    assert_int_equal(count_out(s, BILAL, NULL), 1);
    assert_int_equal(stock_of(s, MASCARA), 95);
    /* the conversation goes on where it was */
    assert_has(say(s, ANA, "where is my order?"), "being prepared");
    shop_stop(s);
}

/* argv[1], when given, runs only the tests whose names match it (cmocka's
 * filter, e.g. "test_identity"). */
/* SOUK_VECTOR=pinecone: souk import upserts the catalogue to the fake
 * Pinecone, and a customer's search through souk serve is answered by a
 * query to it (the tool actor's search asks Pinecone, not the file). */
static void test_search_through_pinecone(void **state)
{
    shop_t *s = *state;
    if (pc_fake_start(SOUK_SRC_DIR) != 0)
        fail_msg("the fake Pinecone did not start");
    setenv("SOUK_PINECONE_NAMESPACE", "e2e-shop", 1);
    shop_start(s, false, small_csv, NULL);
    assert_int_equal(pc_fake_vectors("e2e-shop"), 3);
    size_t from = pc_fake_requests();
    const char *r = say(s, ANA, "show me teapots");
    assert_has(r, "Ceramic Teapot");
    assert_true(pc_fake_count("/query", "e2e-shop", from, NULL) >= 1);
    shop_stop(s);
}

static int s_teardown_pinecone(void **state)
{
    int rc = s_teardown(state);
    pc_fake_stop();
    unsetenv("SOUK_VECTOR");
    unsetenv("PINECONE_INDEX_HOST");
    unsetenv("PINECONE_API_KEY");
    unsetenv("SOUK_PINECONE_NAMESPACE");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_search_to_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_search_through_pinecone, s_setup, s_teardown_pinecone),
        cmocka_unit_test_setup_teardown(test_several_items, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stock_runs_out, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_last_item_race, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_ticket, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_merchant_notified, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_identity, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_replayed_yes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tool_actors_killed_mid_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_session_killed_mid_order, s_setup, s_teardown),
    };
    int up = dynalite_start();
    if (up != 0)
        return up > 0 ? 77 : 1;     /* 77: meson's "skipped" */
    int failures = cmocka_run_group_tests_name(dynalite_backend(), tests, NULL, NULL);
    dynalite_stop();
    return failures;
}
