/* The store's contract, run against the backend named by SOUK_TEST_STORE
 * (sqlite, the default, or dynamodb on a dynalite this test starts): each
 * access pattern, each conditional rule, and many processes writing at once.
 * meson registers the same executable once per backend. Each test gets a
 * fresh data dir from mkdtemp (and, on DynamoDB, a fresh table) and its own
 * handle. Tests of SQLite's own machinery (schema version, writers' queue,
 * busy timeout, an import's one transaction) skip on DynamoDB. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "souk/dynamo.h"
#include "souk/error.h"
#include "souk/store.h"
#include "dynalite.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

static const char *s_backend;   /* the one being run */

#define T0 1700000000000LL
#define WAID "15551230001"
#define OTHER "15551230002"

typedef struct {
    char dir[128];
    store_t *store;
} fixture_t;

/* ---- fixture ------------------------------------------------------------------ */

static int s_unlink(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb, (void) flag, (void) ftw;
    return remove(path);
}

static store_t *s_open(const fixture_t *f, const store_options_t *opt)
{
    store_t *s = NULL;
    char err[256] = "";
    int rc = store_open(s_backend, f->dir, opt, &s, err, sizeof err);
    if (rc != SOUK_OK)
        fail_msg("store_open(%s): %s: %s", s_backend, souk_errname(rc), err);
    return s;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/souk-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(dynalite_fresh_table(), 0);
    f->store = s_open(f, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    store_close(&f->store);
    nftw(f->dir, s_unlink, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Collects the keys a list hands over, in order. */
typedef struct {
    int n;
    int stop_after;             /* > 0: return 1 after that many */
    char keys[256][48];
} keys_t;

static int s_keep(keys_t *k, const char *key)
{
    if (k->n < 256)
        snprintf(k->keys[k->n++], sizeof k->keys[0], "%s", key ? key : "(null)");
    return k->stop_after && k->n >= k->stop_after;
}

static int s_inbound_key(const store_inbound_t *m, void *arg) { return s_keep(arg, m->msg_sid); }
static int s_history_key(const store_history_t *h, void *arg) { return s_keep(arg, h->text); }
static int s_outbox_key(const store_outbox_t *o, void *arg) { return s_keep(arg, o->key); }
static int s_order_key(const store_order_t *o, void *arg) { return s_keep(arg, o->order_id); }
static int s_ticket_key(const store_ticket_t *t, void *arg) { return s_keep(arg, t->ticket_id); }
static int s_product_key(const store_product_t *p, void *arg) { return s_keep(arg, p->sku); }

static store_inbound_t s_msg(const char *sid, const char *waid, int64_t ts)
{
    return (store_inbound_t) { .msg_sid = (char *) sid, .waid = (char *) waid, .body = "hello",
                               .media = "[]", .params = "{\"Body\":\"hello\"}", .received_ms = ts };
}

static store_outbox_t s_reply(const char *key, const char *waid, store_outbox_state_t state, int64_t ts)
{
    return (store_outbox_t) { .key = (char *) key, .waid = (char *) waid, .body = "Hi there",
                              .kind = STORE_KIND_REPLY, .state = state, .next_attempt_ms = ts,
                              .created_ms = ts };
}

static store_product_t s_product(const char *sku, int64_t price, int64_t stock)
{
    return (store_product_t) { .sku = (char *) sku, .name = (char *) sku, .description = "a thing",
                               .price_cents = price, .currency = "EUR", .category = "misc",
                               .tags = "[\"x\"]", .attrs = "{\"colour\":\"red\"}", .stock = stock,
                               .updated_ms = T0 };
}

static int64_t s_stock(store_t *s, const char *sku)
{
    store_product_t p;
    assert_int_equal(store_product_get(s, sku, &p), SOUK_OK);
    int64_t stock = p.stock;
    store_product_clear(&p);
    return stock;
}

/* ---- open, schema, input ------------------------------------------------------ */

static void test_open_twice_keeps_data(void **state)
{
    fixture_t *f = *state;
    store_inbound_t m = s_msg("SM1", WAID, T0);
    assert_int_equal(store_inbound_put(f->store, &m), SOUK_OK);
    store_t *second = s_open(f, NULL);      /* migrations find nothing to do */
    assert_int_equal(store_inbound_put(second, &m), SOUK_EEXISTS);
    store_close(&second);
    assert_null(second);
    store_close(&f->store);
    f->store = s_open(f, &(store_options_t) { .cache_kib = 4096, .busy_timeout_ms = 1000 });
    store_inbound_t got;
    assert_int_equal(store_inbound_get(f->store, "SM1", &got), SOUK_OK);
    assert_string_equal(got.waid, WAID);
    store_inbound_clear(&got);
    store_close(&second);                   /* NULL: no-op */
    store_close(NULL);
}

static void test_open_errors(void **state)
{
    fixture_t *f = *state;
    store_t *s = NULL;
    char err[256] = "";
    assert_int_equal(store_open("nosuch", f->dir, NULL, &s, err, sizeof err), SOUK_EINVAL);
    assert_non_null(strstr(err, "nosuch"));
    assert_int_equal(store_open(s_backend, "", NULL, &s, err, sizeof err), SOUK_EINVAL);
    assert_int_equal(store_open(s_backend, f->dir, &(store_options_t) { .cache_kib = -1 }, &s,
                                NULL, 0), SOUK_EINVAL);
    assert_null(s);
}

static void test_newer_schema_refused(void **state)
{
    if (strcmp(s_backend, "sqlite") != 0)
        skip();
    fixture_t *f = *state;
    store_close(&f->store);
    char path[200];
    snprintf(path, sizeof path, "%s/souk.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    store_t *s = NULL;
    char err[256] = "";
    assert_int_equal(store_open(s_backend, f->dir, NULL, &s, err, sizeof err), SOUK_ECONFIG);
    assert_non_null(strstr(err, "newer"));
    assert_null(s);
}

static void test_concurrent_first_open(void **state)
{
    fixture_t *f = *state;
    store_close(&f->store);
    char dir[160];
    snprintf(dir, sizeof dir, "%s/fresh", f->dir);
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    pid_t pids[8];
    for (int k = 0; k < 8; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            char c;
            close(gate[1]);
            if (read(gate[0], &c, 1) < 0)
                _exit(3);
            store_t *s = NULL;
            char err[256];
            int rc = store_open(s_backend, dir, NULL, &s, err, sizeof err);
            if (rc != SOUK_OK)
                fprintf(stderr, "child %d: %s: %s\n", k, souk_errname(rc), err);
            store_inbound_t m = s_msg(k % 2 ? "SM-odd" : "SM-even", WAID, T0);
            int put = rc == SOUK_OK ? store_inbound_put(s, &m) : rc;
            store_close(&s);
            _exit(rc != SOUK_OK ? 1 : put == SOUK_OK ? 0 : put == SOUK_EEXISTS ? 4 : 2);
        }
    }
    close(gate[0]);
    close(gate[1]);
    int created = 0;
    for (int k = 0; k < 8; k++) {
        int st;
        assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
        assert_true(WIFEXITED(st));
        assert_true(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 4);
        created += WEXITSTATUS(st) == 0;
    }
    assert_int_equal(created, 2);           /* one per distinct sid: the dedupe held */
    store_t *s = NULL;
    assert_int_equal(store_open(s_backend, dir, NULL, &s, NULL, 0), SOUK_OK);
    store_inbound_t m;
    assert_int_equal(store_inbound_get(s, "SM-odd", &m), SOUK_OK);
    store_inbound_clear(&m);
    store_close(&s);
    f->store = s_open(f, NULL);
}

static int s_never(const store_order_t *o, void *arg)
{
    (void) o, (void) arg;
    return 0;
}

static void test_bad_input(void **state)
{
    fixture_t *f = *state;
    store_t *s = f->store;
    store_inbound_t m = s_msg("", WAID, T0);
    assert_int_equal(store_inbound_put(s, &m), SOUK_EINVAL);
    m = s_msg("SM1", "+1555", T0);
    assert_int_equal(store_inbound_put(s, &m), SOUK_EINVAL);
    assert_int_equal(store_inbound_put(s, NULL), SOUK_EINVAL);
    assert_int_equal(store_inbound_put(NULL, &m), SOUK_EINVAL);
    assert_int_equal(store_inbound_finish(s, "SM1", STORE_INBOUND_RECEIVED, NULL), SOUK_EINVAL);
    assert_int_equal(store_user_get(s, NULL, &(store_user_t) { 0 }), SOUK_EINVAL);
    assert_int_equal(store_user_get(s, "12ab", &(store_user_t) { 0 }), SOUK_EINVAL);
    assert_int_equal(store_product_take(s, "SKU", 0), SOUK_EINVAL);
    assert_int_equal(store_product_take(s, "SKU", -3), SOUK_EINVAL);
    assert_int_equal(store_product_give(s, "", 1), SOUK_EINVAL);
    assert_int_equal(store_outbox_transition(s, "k", (store_outbox_state_t) 99, STORE_OUTBOX_SENT,
                                             NULL, NULL), SOUK_EINVAL);
    assert_int_equal(store_outbox_due(s, STORE_OUTBOX_SENT, T0, 10, s_outbox_key, NULL), SOUK_EINVAL);
    assert_int_equal(store_outbox_due(s, STORE_OUTBOX_QUEUED, T0, 0, s_outbox_key, NULL), SOUK_EINVAL);
    store_outbox_t o = s_reply("r:1", NULL, STORE_OUTBOX_QUEUED, T0);
    assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_EINVAL);   /* neither waid nor to_addr */
    o = s_reply("r:1", WAID, STORE_OUTBOX_SENT, T0);
    assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_EINVAL);   /* not a starting state */
    assert_int_equal(store_order_list_user(s, WAID, NULL, NULL), SOUK_EINVAL);
    assert_int_equal(store_order_list_user(s, "", s_never, NULL), SOUK_EINVAL);
    assert_int_equal(store_lease_acquire(s, "n", "o", 0, T0), SOUK_EINVAL);
    assert_int_equal(store_idem_put(s, "k", NULL, T0, NULL), SOUK_EINVAL);
    store_order_line_t lines[] = { { "SKU", 0 } };
    size_t bad = 99;
    store_order_request_t req = { .waid = WAID, .idem_key = "i", .lines = lines, .n_lines = 1,
                                  .now_ms = T0 };
    assert_int_equal(store_order_place(s, &req, NULL, &bad), SOUK_EINVAL);
    assert_int_equal(bad, 0);
    char key[600];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(store_idem_put(s, key, "{}", T0, NULL), SOUK_EINVAL);
    /* nothing above reached the data */
    int64_t n = -1;
    assert_int_equal(store_product_count(s, &n), SOUK_OK);
    assert_int_equal(n, 0);
}

/* ---- users ---------------------------------------------------------------------- */

static void test_users(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    store_user_t u;
    assert_int_equal(store_user_get(s, WAID, &u), SOUK_ENOTFOUND);
    store_user_seen_t seen = { .waid = WAID, .profile_name = "Amina", .from_addr = "whatsapp:+15551230001",
                               .media_json = "[\"https://m/1.jpg\"]", .inbound = true, .now_ms = T0 };
    assert_int_equal(store_user_seen(s, &seen), SOUK_OK);
    seen = (store_user_seen_t) { .waid = WAID, .now_ms = T0 + 50 };   /* not a message: window stays */
    assert_int_equal(store_user_seen(s, &seen), SOUK_OK);
    assert_int_equal(store_user_get(s, WAID, &u), SOUK_OK);
    assert_string_equal(u.profile_name, "Amina");
    assert_string_equal(u.from_addr, "whatsapp:+15551230001");
    assert_string_equal(u.last_media, "[\"https://m/1.jpg\"]");
    assert_int_equal(u.first_seen_ms, T0);
    assert_int_equal(u.last_seen_ms, T0 + 50);
    assert_int_equal(u.last_inbound_ms, T0);
    assert_false(u.opted_out);
    store_user_clear(&u);
    assert_null(u.waid);

    assert_int_equal(store_user_set_opt_out(s, WAID, true, T0 + 100), SOUK_OK);
    assert_int_equal(store_user_set_opt_out(s, WAID, true, T0 + 200), SOUK_OK);   /* no change */
    assert_int_equal(store_user_get(s, WAID, &u), SOUK_OK);
    assert_true(u.opted_out);
    assert_int_equal(u.opt_changed_ms, T0 + 100);
    store_user_clear(&u);
    assert_int_equal(store_user_set_opt_out(s, WAID, false, T0 + 300), SOUK_OK);
    assert_int_equal(store_user_get(s, WAID, &u), SOUK_OK);
    assert_false(u.opted_out);
    assert_int_equal(u.opt_changed_ms, T0 + 300);
    store_user_clear(&u);

    /* a STOP from a number never seen is kept */
    assert_int_equal(store_user_set_opt_out(s, OTHER, true, T0), SOUK_OK);
    assert_int_equal(store_user_get(s, OTHER, &u), SOUK_OK);
    assert_true(u.opted_out);
    assert_null(u.profile_name);
    store_user_clear(&u);
}

/* ---- inbound ---------------------------------------------------------------------- */

static void test_inbound(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    for (int i = 0; i < 3; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "SM%d", i);
        store_inbound_t m = s_msg(sid, WAID, T0 + 10 - i);  /* clocks disagree: arrival order wins */
        assert_int_equal(store_inbound_put(s, &m), SOUK_OK);
    }
    store_inbound_t m = s_msg("SM1", WAID, T0);
    assert_int_equal(store_inbound_put(s, &m), SOUK_EEXISTS);
    m = s_msg("SMX", OTHER, T0);
    assert_int_equal(store_inbound_put(s, &m), SOUK_OK);

    store_inbound_t got;
    assert_int_equal(store_inbound_get(s, "SM1", &got), SOUK_OK);
    assert_string_equal(got.body, "hello");
    assert_string_equal(got.params, "{\"Body\":\"hello\"}");
    assert_int_equal(got.state, STORE_INBOUND_RECEIVED);
    assert_null(got.turn_sid);
    store_inbound_clear(&got);
    assert_int_equal(store_inbound_get(s, "nope", &got), SOUK_ENOTFOUND);

    keys_t k = { 0 };
    assert_int_equal(store_inbound_pending(s, WAID, s_inbound_key, &k), SOUK_OK);
    assert_int_equal(k.n, 3);
    assert_string_equal(k.keys[0], "SM0");
    assert_string_equal(k.keys[2], "SM2");

    assert_int_equal(store_inbound_finish(s, "SM0", STORE_INBOUND_DONE, "SM0"), SOUK_OK);
    assert_int_equal(store_inbound_finish(s, "SM1", STORE_INBOUND_MERGED, "SM0"), SOUK_OK);
    assert_int_equal(store_inbound_finish(s, "SM1", STORE_INBOUND_DONE, NULL), SOUK_ECONFLICT);
    assert_int_equal(store_inbound_finish(s, "nope", STORE_INBOUND_DONE, NULL), SOUK_ENOTFOUND);
    assert_int_equal(store_inbound_get(s, "SM1", &got), SOUK_OK);
    assert_int_equal(got.state, STORE_INBOUND_MERGED);
    assert_string_equal(got.turn_sid, "SM0");
    store_inbound_clear(&got);

    k = (keys_t) { 0 };
    assert_int_equal(store_inbound_pending(s, WAID, s_inbound_key, &k), SOUK_OK);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.keys[0], "SM2");
}

/* ---- lists: paging, stopping, calling back into the store ------------------------ */

static int s_finish_each(const store_inbound_t *m, void *arg)
{
    store_t *s = arg;
    /* the handle is free during the call: write through it */
    return store_inbound_finish(s, m->msg_sid, STORE_INBOUND_DONE, m->msg_sid);
}

static int s_fail_with(const store_inbound_t *m, void *arg)
{
    (void) m, (void) arg;
    return SOUK_ENOMEM;
}

static void test_lists_page_stop_reenter(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    for (int i = 0; i < 100; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "SM%03d", i);
        store_inbound_t m = s_msg(sid, WAID, T0 + i);
        assert_int_equal(store_inbound_put(s, &m), SOUK_OK);
    }
    keys_t k = { 0 };
    assert_int_equal(store_inbound_pending(s, WAID, s_inbound_key, &k), SOUK_OK);
    assert_int_equal(k.n, 100);             /* more than one page, in order, no repeats */
    for (int i = 0; i < 100; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "SM%03d", i);
        assert_string_equal(k.keys[i], sid);
    }
    k = (keys_t) { .stop_after = 40 };
    assert_int_equal(store_inbound_pending(s, WAID, s_inbound_key, &k), SOUK_OK);
    assert_int_equal(k.n, 40);
    assert_int_equal(store_inbound_pending(s, WAID, s_fail_with, NULL), SOUK_ENOMEM);

    assert_int_equal(store_inbound_pending(s, WAID, s_finish_each, s), SOUK_OK);
    k = (keys_t) { 0 };
    assert_int_equal(store_inbound_pending(s, WAID, s_inbound_key, &k), SOUK_OK);
    assert_int_equal(k.n, 0);
}

/* ---- history ------------------------------------------------------------------------ */

static void test_history(void **state)
{
    fixture_t *f = *state;
    store_close(&f->store);
    f->store = s_open(f, &(store_options_t) { .history_keep = 5 });
    store_t *s = f->store;
    for (int i = 0; i < 8; i++) {
        char text[16], sid[16];
        snprintf(text, sizeof text, "t%d", i);
        snprintf(sid, sizeof sid, "SM%d", i);
        store_history_t h = { .waid = WAID, .dir = i % 2 ? STORE_DIR_OUT : STORE_DIR_IN,
                              .msg_sid = sid, .text = text, .ts_ms = T0 + i };
        assert_int_equal(store_history_append(s, &h), SOUK_OK);
        assert_int_equal(store_history_append(s, &h), SOUK_EEXISTS);
    }
    store_history_t h = { .waid = WAID, .dir = STORE_DIR_OUT, .text = "no key", .ts_ms = T0 + 9 };
    assert_int_equal(store_history_append(s, &h), SOUK_OK);
    assert_int_equal(store_history_append(s, &h), SOUK_OK);    /* no msg_sid: no dedupe */
    h = (store_history_t) { .waid = OTHER, .dir = STORE_DIR_IN, .msg_sid = "SM0", .text = "other",
                            .ts_ms = T0 };
    assert_int_equal(store_history_append(s, &h), SOUK_OK);    /* another user's sid space */

    keys_t k = { 0 };
    assert_int_equal(store_history_recent(s, WAID, 3, s_history_key, &k), SOUK_OK);
    assert_int_equal(k.n, 3);
    assert_string_equal(k.keys[0], "t7");   /* oldest of the last three first */
    assert_string_equal(k.keys[2], "no key");
    k = (keys_t) { 0 };
    assert_int_equal(store_history_recent(s, WAID, 100, s_history_key, &k), SOUK_OK);
    assert_int_equal(k.n, 5);               /* trimmed to history_keep */
    assert_string_equal(k.keys[0], "t5");
    k = (keys_t) { 0 };
    assert_int_equal(store_history_recent(s, OTHER, 10, s_history_key, &k), SOUK_OK);
    assert_int_equal(k.n, 1);
}

/* ---- batches ------------------------------------------------------------------------- */

static bool s_has_inbound(store_t *s, const char *sid)
{
    store_inbound_t got = { 0 };
    int rc = store_inbound_get(s, sid, &got);
    store_inbound_clear(&got);
    assert_true(rc == SOUK_OK || rc == SOUK_ENOTFOUND);
    return rc == SOUK_OK;
}

/* One transaction on SQLite: nothing seen before the commit, nothing left
 * after a rollback or a crash; a primitive's own refusal inside it undoes
 * only that primitive. On DynamoDB every primitive is durable at once. */
static void test_batch(void **state)
{
    fixture_t *f = *state;
    store_t *s = f->store, *other = s_open(f, NULL);
    bool sqlite = strcmp(s_backend, "sqlite") == 0;

    assert_int_equal(store_batch_end(s, true), SOUK_EINVAL);        /* none open */
    assert_int_equal(store_batch_begin(s), SOUK_OK);
    assert_int_equal(store_batch_begin(s), SOUK_EBUSY);
    store_inbound_t m = s_msg("SM1", WAID, T0);
    assert_int_equal(store_inbound_put(s, &m), SOUK_OK);
    assert_int_equal(store_inbound_put(s, &m), SOUK_EEXISTS);       /* refused, batch goes on */
    store_history_t h = { .waid = WAID, .dir = STORE_DIR_IN, .msg_sid = "SM1", .text = "t1",
                          .ts_ms = T0 };
    assert_int_equal(store_history_append(s, &h), SOUK_OK);         /* a transaction of its own */
    assert_int_equal(store_history_append(s, &h), SOUK_EEXISTS);
    assert_int_equal(store_inbound_finish(s, "SM1", STORE_INBOUND_DONE, "SM1"), SOUK_OK);
    assert_int_equal(s_has_inbound(other, "SM1"), !sqlite);         /* not yet visible */
    assert_int_equal(store_batch_end(s, true), SOUK_OK);
    assert_true(s_has_inbound(other, "SM1"));
    keys_t k = { 0 };
    assert_int_equal(store_history_recent(other, WAID, 10, s_history_key, &k), SOUK_OK);
    assert_int_equal(k.n, 1);
    store_inbound_t got = { 0 };
    assert_int_equal(store_inbound_get(other, "SM1", &got), SOUK_OK);
    assert_int_equal(got.state, STORE_INBOUND_DONE);
    store_inbound_clear(&got);

    /* rolled back */
    assert_int_equal(store_batch_begin(s), SOUK_OK);
    m = s_msg("SM2", WAID, T0);
    assert_int_equal(store_inbound_put(s, &m), SOUK_OK);
    assert_int_equal(store_batch_end(s, false), SOUK_OK);
    assert_int_equal(s_has_inbound(other, "SM2"), !sqlite);

    /* killed inside: nothing of it stays, and the store takes writes */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_t *c = s_open(f, NULL);
        store_inbound_t cm = s_msg("SM3", WAID, T0);
        if (store_batch_begin(c) != SOUK_OK || store_inbound_put(c, &cm) != SOUK_OK)
            _exit(1);
        raise(SIGKILL);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(s_has_inbound(other, "SM3"), !sqlite);
    m = s_msg("SM4", WAID, T0);
    assert_int_equal(store_inbound_put(other, &m), SOUK_OK);
    store_close(&other);
}

/* ---- outbox ---------------------------------------------------------------------------- */

static void test_outbox_put_get(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    store_outbox_t o = s_reply("r:SM1", WAID, STORE_OUTBOX_OFFERED, T0);
    assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_OK);
    store_outbox_t again = s_reply("r:SM1", WAID, STORE_OUTBOX_QUEUED, T0 + 5);
    again.body = "a different body";
    store_outbox_t first;
    assert_int_equal(store_outbox_put(s, &again, &first), SOUK_EEXISTS);
    assert_string_equal(first.body, "Hi there");     /* the first one, to carry on with */
    assert_int_equal(first.state, STORE_OUTBOX_OFFERED);
    assert_int_equal(first.created_ms, T0);
    assert_int_equal(first.attempts, 0);
    store_outbox_clear(&first);
    assert_int_equal(store_outbox_put(s, &again, NULL), SOUK_EEXISTS);

    store_outbox_t m = { .key = "m:SK-1", .to_addr = "whatsapp:+15550000000", .body = "New order",
                         .kind = STORE_KIND_NOTIFY, .state = STORE_OUTBOX_QUEUED, .created_ms = T0 };
    assert_int_equal(store_outbox_put(s, &m, NULL), SOUK_OK);
    store_outbox_t got;
    assert_int_equal(store_outbox_get(s, "m:SK-1", &got), SOUK_OK);
    assert_null(got.waid);
    assert_int_equal(got.kind, STORE_KIND_NOTIFY);
    assert_string_equal(got.to_addr, "whatsapp:+15550000000");
    store_outbox_clear(&got);
    assert_int_equal(store_outbox_get(s, "r:none", &got), SOUK_ENOTFOUND);
    assert_int_equal(store_outbox_get_by_sid(s, "SMnone", &got), SOUK_ENOTFOUND);
}

static void test_outbox_transitions(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    store_outbox_t o = s_reply("r:SM1", WAID, STORE_OUTBOX_OFFERED, T0);
    assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_OK);
    store_outbox_t got;

    /* wrong expected state: nothing changes, the row comes back */
    assert_int_equal(store_outbox_transition(s, "r:SM1", STORE_OUTBOX_QUEUED, STORE_OUTBOX_SENDING,
                                             NULL, &got), SOUK_ECONFLICT);
    assert_int_equal(got.state, STORE_OUTBOX_OFFERED);
    store_outbox_clear(&got);
    /* not an edge of the machine */
    assert_int_equal(store_outbox_transition(s, "r:SM1", STORE_OUTBOX_OFFERED, STORE_OUTBOX_SENT,
                                             NULL, NULL), SOUK_ESTATE);
    assert_int_equal(store_outbox_transition(s, "r:none", STORE_OUTBOX_OFFERED, STORE_OUTBOX_QUEUED,
                                             NULL, NULL), SOUK_ENOTFOUND);

    /* the gateway answered inline: terminal */
    assert_int_equal(store_outbox_transition(s, "r:SM1", STORE_OUTBOX_OFFERED, STORE_OUTBOX_INLINE,
                                             NULL, NULL), SOUK_OK);
    assert_int_equal(store_outbox_transition(s, "r:SM1", STORE_OUTBOX_OFFERED, STORE_OUTBOX_QUEUED,
                                             NULL, NULL), SOUK_ECONFLICT);
    for (int st = 0; st <= STORE_OUTBOX_UNDELIVERED; st++) {
        assert_false(store_outbox_can_move(STORE_OUTBOX_INLINE, (store_outbox_state_t) st));
        assert_false(store_outbox_can_move(STORE_OUTBOX_READ, (store_outbox_state_t) st));
        assert_false(store_outbox_can_move(STORE_OUTBOX_FAILED, (store_outbox_state_t) st));
        assert_false(store_outbox_can_move(STORE_OUTBOX_UNDELIVERED, (store_outbox_state_t) st));
    }

    /* the REST path with a retry */
    o = s_reply("r:SM2", WAID, STORE_OUTBOX_OFFERED, T0);
    assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_OK);
    assert_int_equal(store_outbox_transition(s, "r:SM2", STORE_OUTBOX_OFFERED, STORE_OUTBOX_QUEUED,
                                             NULL, NULL), SOUK_OK);
    store_outbox_change_t lease = { .count_attempt = true, .next_attempt_ms = T0 + 30000, .now_ms = T0 + 1 };
    assert_int_equal(store_outbox_transition(s, "r:SM2", STORE_OUTBOX_QUEUED, STORE_OUTBOX_SENDING,
                                             &lease, NULL), SOUK_OK);
    store_outbox_change_t retry = { .error_code = 20429, .error_reason = "Too Many Requests",
                                    .next_attempt_ms = T0 + 2000, .now_ms = T0 + 2 };
    assert_int_equal(store_outbox_transition(s, "r:SM2", STORE_OUTBOX_SENDING, STORE_OUTBOX_QUEUED,
                                             &retry, NULL), SOUK_OK);
    assert_int_equal(store_outbox_transition(s, "r:SM2", STORE_OUTBOX_QUEUED, STORE_OUTBOX_SENDING,
                                             &lease, NULL), SOUK_OK);
    store_outbox_change_t sent = { .twilio_sid = "SMtw2", .now_ms = T0 + 3 };
    assert_int_equal(store_outbox_transition(s, "r:SM2", STORE_OUTBOX_SENDING, STORE_OUTBOX_SENT,
                                             &sent, &got), SOUK_OK);
    assert_int_equal(got.state, STORE_OUTBOX_SENT);
    assert_int_equal(got.attempts, 2);
    assert_int_equal(got.error_code, 20429);
    assert_string_equal(got.error_reason, "Too Many Requests");
    assert_int_equal(got.updated_ms, T0 + 3);
    assert_int_equal(got.created_ms, T0);
    store_outbox_clear(&got);
    assert_int_equal(store_outbox_get_by_sid(s, "SMtw2", &got), SOUK_OK);
    assert_string_equal(got.key, "r:SM2");
    store_outbox_clear(&got);
}

static void test_outbox_due_and_offered(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    const int64_t at[] = { T0 + 30, T0 + 10, T0 + 20, T0 + 500 };
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "r:%d", i);
        store_outbox_t o = s_reply(key, WAID, STORE_OUTBOX_QUEUED, at[i]);
        assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_OK);
    }
    store_outbox_t o = s_reply("r:offered", WAID, STORE_OUTBOX_OFFERED, T0);
    assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_OK);
    o = s_reply("r:other", OTHER, STORE_OUTBOX_OFFERED, T0);
    assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_OK);

    keys_t k = { 0 };
    assert_int_equal(store_outbox_due(s, STORE_OUTBOX_QUEUED, T0 + 100, 10, s_outbox_key, &k), SOUK_OK);
    assert_int_equal(k.n, 3);
    assert_string_equal(k.keys[0], "r:1");  /* oldest due first */
    assert_string_equal(k.keys[1], "r:2");
    assert_string_equal(k.keys[2], "r:0");
    k = (keys_t) { 0 };
    assert_int_equal(store_outbox_due(s, STORE_OUTBOX_QUEUED, T0 + 100, 2, s_outbox_key, &k), SOUK_OK);
    assert_int_equal(k.n, 2);

    /* a sender that died mid-send: its lease runs out, the row shows up as sending */
    store_outbox_change_t lease = { .count_attempt = true, .next_attempt_ms = T0 + 1000, .now_ms = T0 };
    assert_int_equal(store_outbox_transition(s, "r:1", STORE_OUTBOX_QUEUED, STORE_OUTBOX_SENDING,
                                             &lease, NULL), SOUK_OK);
    k = (keys_t) { 0 };
    assert_int_equal(store_outbox_due(s, STORE_OUTBOX_SENDING, T0 + 999, 10, s_outbox_key, &k), SOUK_OK);
    assert_int_equal(k.n, 0);
    assert_int_equal(store_outbox_due(s, STORE_OUTBOX_SENDING, T0 + 1000, 10, s_outbox_key, &k), SOUK_OK);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.keys[0], "r:1");

    k = (keys_t) { 0 };
    assert_int_equal(store_outbox_offered(s, WAID, s_outbox_key, &k), SOUK_OK);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.keys[0], "r:offered");
    assert_int_equal(store_outbox_transition(s, "r:offered", STORE_OUTBOX_OFFERED, STORE_OUTBOX_INLINE,
                                             NULL, NULL), SOUK_OK);
    k = (keys_t) { 0 };
    assert_int_equal(store_outbox_offered(s, WAID, s_outbox_key, &k), SOUK_OK);
    assert_int_equal(k.n, 0);
}

/* The console's view: every row, newest first, over more than one page,
 * and a callback may stop it early. */
static void test_outbox_list_all(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    keys_t k = { 0 };
    if (strcmp(s_backend, "dynamodb") == 0) {
        /* optional: on DynamoDB it would be a scan of the whole table, and
         * its one user (the console's live outbox) refreshes every second */
        assert_int_equal(store_outbox_list_all(s, s_outbox_key, &k), SOUK_EUNAVAIL);
        skip();
    }
    assert_int_equal(store_outbox_list_all(s, s_outbox_key, &k), SOUK_OK);
    assert_int_equal(k.n, 0);
    for (int i = 0; i < 150; i++) {
        char key[16];
        snprintf(key, sizeof key, "r:%03d", i);
        store_outbox_t o = s_reply(key, i % 2 ? WAID : OTHER, STORE_OUTBOX_QUEUED, T0 + i);
        assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_OK);
    }
    assert_int_equal(store_outbox_transition(s, "r:149", STORE_OUTBOX_QUEUED, STORE_OUTBOX_SENDING,
                                             NULL, NULL), SOUK_OK);
    assert_int_equal(store_outbox_list_all(s, s_outbox_key, &k), SOUK_OK);
    assert_int_equal(k.n, 150);
    assert_string_equal(k.keys[0], "r:149");
    assert_string_equal(k.keys[149], "r:000");
    k = (keys_t) { .stop_after = 30 };
    assert_int_equal(store_outbox_list_all(s, s_outbox_key, &k), SOUK_OK);
    assert_int_equal(k.n, 30);
    assert_string_equal(k.keys[29], "r:120");
    assert_int_equal(store_outbox_list_all(s, NULL, NULL), SOUK_EINVAL);
}

/* ---- delivery callbacks ---------------------------------------------------------- */

static void s_sent(store_t *s, const char *key, const char *sid)
{
    store_outbox_t o = s_reply(key, WAID, STORE_OUTBOX_QUEUED, T0);
    assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_OK);
    assert_int_equal(store_outbox_transition(s, key, STORE_OUTBOX_QUEUED, STORE_OUTBOX_SENDING,
                                             NULL, NULL), SOUK_OK);
    store_outbox_change_t c = { .twilio_sid = sid, .now_ms = T0 + 1 };
    assert_int_equal(store_outbox_transition(s, key, STORE_OUTBOX_SENDING, STORE_OUTBOX_SENT, &c, NULL),
                     SOUK_OK);
}

static store_outbox_state_t s_state(store_t *s, const char *key)
{
    store_outbox_t o;
    assert_int_equal(store_outbox_get(s, key, &o), SOUK_OK);
    store_outbox_state_t st = o.state;
    store_outbox_clear(&o);
    return st;
}

static void test_delivery_out_of_order(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    store_outbox_state_t st = STORE_OUTBOX_OFFERED;
    s_sent(s, "r:A", "SMa");
    assert_int_equal(store_delivery_update(s, "SMa", STORE_OUTBOX_DELIVERED, 0, T0 + 20, &st), SOUK_OK);
    assert_int_equal(st, STORE_OUTBOX_DELIVERED);
    assert_int_equal(store_delivery_update(s, "SMa", STORE_OUTBOX_SENT, 0, T0 + 10, &st), SOUK_OK);
    assert_int_equal(st, STORE_OUTBOX_DELIVERED);               /* late "sent" ignored */
    assert_int_equal(store_delivery_update(s, "SMa", STORE_OUTBOX_DELIVERED, 0, T0 + 20, &st),
                     SOUK_EEXISTS);                             /* exact repeat */
    assert_int_equal(st, STORE_OUTBOX_DELIVERED);
    assert_int_equal(store_delivery_update(s, "SMa", STORE_OUTBOX_UNDELIVERED, 63016, T0 + 25, &st),
                     SOUK_OK);
    assert_int_equal(st, STORE_OUTBOX_DELIVERED);               /* delivered is not undone */
    assert_int_equal(store_delivery_update(s, "SMa", STORE_OUTBOX_READ, 0, T0 + 30, &st), SOUK_OK);
    assert_int_equal(st, STORE_OUTBOX_READ);
    assert_int_equal(store_delivery_update(s, "SMa", STORE_OUTBOX_FAILED, 30008, T0 + 40, &st), SOUK_OK);
    assert_int_equal(st, STORE_OUTBOX_READ);                    /* terminal */
    assert_int_equal(s_state(s, "r:A"), STORE_OUTBOX_READ);

    /* read can come before delivered */
    s_sent(s, "r:B", "SMb");
    assert_int_equal(store_delivery_update(s, "SMb", STORE_OUTBOX_READ, 0, T0 + 30, &st), SOUK_OK);
    assert_int_equal(store_delivery_update(s, "SMb", STORE_OUTBOX_DELIVERED, 0, T0 + 20, &st), SOUK_OK);
    assert_int_equal(st, STORE_OUTBOX_READ);

    /* failure keeps its code; then nothing moves it */
    s_sent(s, "r:C", "SMc");
    assert_int_equal(store_delivery_update(s, "SMc", STORE_OUTBOX_UNDELIVERED, 63016, T0 + 5, &st), SOUK_OK);
    assert_int_equal(st, STORE_OUTBOX_UNDELIVERED);
    assert_int_equal(store_delivery_update(s, "SMc", STORE_OUTBOX_DELIVERED, 0, T0 + 6, &st), SOUK_OK);
    assert_int_equal(st, STORE_OUTBOX_UNDELIVERED);
    store_outbox_t o;
    assert_int_equal(store_outbox_get(s, "r:C", &o), SOUK_OK);
    assert_int_equal(o.error_code, 63016);
    store_outbox_clear(&o);

    /* Twilio's own queued/sending say nothing to us */
    assert_int_equal(store_delivery_update(s, "SMc", STORE_OUTBOX_QUEUED, 0, T0 + 1, &st), SOUK_OK);
    assert_int_equal(st, STORE_OUTBOX_UNDELIVERED);
}

static void test_delivery_before_sid_recorded(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    store_outbox_state_t st = STORE_OUTBOX_OFFERED;
    store_outbox_t o = s_reply("r:D", WAID, STORE_OUTBOX_QUEUED, T0);
    assert_int_equal(store_outbox_put(s, &o, NULL), SOUK_OK);
    assert_int_equal(store_outbox_transition(s, "r:D", STORE_OUTBOX_QUEUED, STORE_OUTBOX_SENDING,
                                             NULL, NULL), SOUK_OK);
    /* the callback beats the REST answer */
    assert_int_equal(store_delivery_update(s, "SMd", STORE_OUTBOX_DELIVERED, 0, T0 + 9, &st),
                     SOUK_ENOTFOUND);
    assert_int_equal(store_delivery_update(s, "SMd", STORE_OUTBOX_DELIVERED, 0, T0 + 9, &st),
                     SOUK_ENOTFOUND);
    store_outbox_change_t c = { .twilio_sid = "SMd", .now_ms = T0 + 5 };
    assert_int_equal(store_outbox_transition(s, "r:D", STORE_OUTBOX_SENDING, STORE_OUTBOX_SENT, &c, &o),
                     SOUK_OK);
    assert_int_equal(o.state, STORE_OUTBOX_DELIVERED);
    store_outbox_clear(&o);
    assert_int_equal(store_delivery_update(s, "SMd", STORE_OUTBOX_DELIVERED, 0, T0 + 9, &st), SOUK_EEXISTS);
    assert_int_equal(st, STORE_OUTBOX_DELIVERED);
}

/* ---- idempotency keys ------------------------------------------------------------ */

static void test_idem(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    char *r = NULL;
    assert_int_equal(store_idem_get(s, "tool:cancel:1", &r), SOUK_ENOTFOUND);
    assert_null(r);
    assert_int_equal(store_idem_put(s, "tool:cancel:1", "{\"ok\":true}", T0, NULL), SOUK_OK);
    assert_int_equal(store_idem_put(s, "tool:cancel:1", "{\"ok\":false}", T0 + 1, &r), SOUK_EEXISTS);
    assert_string_equal(r, "{\"ok\":true}");
    free(r);
    assert_int_equal(store_idem_get(s, "tool:cancel:1", &r), SOUK_OK);
    assert_string_equal(r, "{\"ok\":true}");
    free(r);
}

/* ---- products --------------------------------------------------------------------- */

static void test_products(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    store_product_t rows[40];
    char skus[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(skus[i], sizeof skus[i], "SKU-%02d", i);
        rows[i] = s_product(skus[i], 1000 + i, 5);
    }
    assert_int_equal(store_product_upsert(s, rows, 40, NULL), SOUK_OK);
    int64_t n = 0;
    assert_int_equal(store_product_count(s, &n), SOUK_OK);
    assert_int_equal(n, 40);
    keys_t k = { 0 };
    assert_int_equal(store_product_each(s, s_product_key, &k), SOUK_OK);
    assert_int_equal(k.n, 40);

    store_product_t p;
    assert_int_equal(store_product_get(s, "SKU-07", &p), SOUK_OK);
    assert_int_equal(p.price_cents, 1007);
    assert_string_equal(p.attrs, "{\"colour\":\"red\"}");
    assert_string_equal(p.tags, "[\"x\"]");
    assert_null(p.brand);
    store_product_clear(&p);
    assert_int_equal(store_product_get(s, "nope", &p), SOUK_ENOTFOUND);

    /* upsert replaces; a bad row anywhere writes nothing */
    store_product_t batch[3] = { s_product("SKU-00", 1, 9), s_product("NEW-1", 2, 9),
                                 s_product("NEW-2", -5, 9) };
    size_t bad = 99;
    assert_int_equal(store_product_upsert(s, batch, 3, &bad), SOUK_EINVAL);
    assert_int_equal(bad, 2);
    assert_int_equal(store_product_get(s, "NEW-1", &p), SOUK_ENOTFOUND);
    assert_int_equal(s_stock(s, "SKU-00"), 5);
    batch[2].price_cents = 3;
    assert_int_equal(store_product_upsert(s, batch, 3, &bad), SOUK_OK);
    assert_int_equal(s_stock(s, "SKU-00"), 9);
    assert_int_equal(store_product_count(s, &n), SOUK_OK);
    assert_int_equal(n, 42);

    /* stock never goes below zero */
    assert_int_equal(store_product_take(s, "SKU-01", 3), SOUK_OK);
    assert_int_equal(store_product_take(s, "SKU-01", 3), SOUK_ESTOCK);
    assert_int_equal(s_stock(s, "SKU-01"), 2);
    assert_int_equal(store_product_take(s, "SKU-01", 2), SOUK_OK);
    assert_int_equal(store_product_take(s, "SKU-01", 1), SOUK_ESTOCK);
    assert_int_equal(s_stock(s, "SKU-01"), 0);
    assert_int_equal(store_product_give(s, "SKU-01", 4), SOUK_OK);
    assert_int_equal(s_stock(s, "SKU-01"), 4);
    assert_int_equal(store_product_take(s, "nope", 1), SOUK_ENOTFOUND);
    assert_int_equal(store_product_give(s, "nope", 1), SOUK_ENOTFOUND);
}

/* ---- orders -------------------------------------------------------------------------- */

static void test_orders_put_get_identity(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    store_order_t o = { .waid = WAID, .items = "[{\"sku\":\"A\",\"name\":\"A\",\"qty\":1,\"unit_cents\":500}]",
                        .total_cents = 500, .currency = "EUR", .status = STORE_ORDER_PENDING,
                        .idem_key = "turn:SM1:order", .created_ms = T0 };
    store_order_t first, again;
    assert_int_equal(store_order_put(s, &o, &first), SOUK_OK);
    assert_non_null(first.order_id);
    assert_int_equal(strncmp(first.order_id, "SK-", 3), 0);
    assert_int_equal(strlen(first.order_id), 8);
    o.total_cents = 999;
    assert_int_equal(store_order_put(s, &o, &again), SOUK_EEXISTS);
    assert_string_equal(again.order_id, first.order_id);
    assert_int_equal(again.total_cents, 500);
    store_order_clear(&again);

    store_order_t got;
    assert_int_equal(store_order_get(s, first.order_id, WAID, &got), SOUK_OK);
    assert_string_equal(got.items, o.items);
    assert_int_equal(got.status, STORE_ORDER_PENDING);
    store_order_clear(&got);
    assert_int_equal(store_order_get(s, first.order_id, OTHER, &got), SOUK_ENOTFOUND);
    assert_int_equal(store_order_transition(s, first.order_id, OTHER, STORE_ORDER_CANCELLED, T0, NULL),
                     SOUK_ENOTFOUND);
    assert_int_equal(store_order_lookup(s, first.order_id, &got), SOUK_OK);
    assert_string_equal(got.waid, WAID);
    store_order_clear(&got);

    /* a given id that is taken */
    store_order_t dup = o;
    dup.order_id = first.order_id;
    dup.idem_key = "another";
    assert_int_equal(store_order_put(s, &dup, NULL), SOUK_ECONFLICT);
    store_order_clear(&first);
}

static void test_orders_lists_and_status(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    char ids[5][16];
    for (int i = 0; i < 5; i++) {
        char idem[16];
        snprintf(ids[i], sizeof ids[i], "SK-T%04d", i);
        snprintf(idem, sizeof idem, "idem-%d", i);
        store_order_t o = { .order_id = ids[i], .waid = i < 3 ? WAID : OTHER, .items = "[]",
                            .total_cents = 0, .currency = "EUR", .status = STORE_ORDER_PENDING,
                            .idem_key = idem, .created_ms = T0 + i };
        assert_int_equal(store_order_put(s, &o, NULL), SOUK_OK);
    }
    keys_t k = { 0 };
    assert_int_equal(store_order_list_user(s, WAID, s_order_key, &k), SOUK_OK);
    assert_int_equal(k.n, 3);
    assert_string_equal(k.keys[0], "SK-T0002");     /* newest first */
    assert_string_equal(k.keys[2], "SK-T0000");
    k = (keys_t) { 0 };
    assert_int_equal(store_order_list_all(s, s_order_key, &k), SOUK_OK);
    assert_int_equal(k.n, 5);
    assert_string_equal(k.keys[0], "SK-T0004");

    store_order_t o;
    assert_int_equal(store_order_transition(s, "SK-T0000", WAID, STORE_ORDER_CONFIRMED, T0 + 10, &o), SOUK_OK);
    assert_int_equal(o.status, STORE_ORDER_CONFIRMED);
    assert_int_equal(o.updated_ms, T0 + 10);
    store_order_clear(&o);
    assert_int_equal(store_order_transition(s, "SK-T0000", WAID, STORE_ORDER_SHIPPED, T0 + 11, NULL), SOUK_OK);
    assert_int_equal(store_order_transition(s, "SK-T0000", WAID, STORE_ORDER_CANCELLED, T0 + 12, &o),
                     SOUK_ESTATE);
    assert_int_equal(o.status, STORE_ORDER_SHIPPED);
    store_order_clear(&o);
    assert_int_equal(store_order_transition(s, "SK-T0000", WAID, STORE_ORDER_CONFIRMED, T0 + 12, NULL),
                     SOUK_ESTATE);
    assert_int_equal(store_order_transition(s, "SK-T0001", WAID, STORE_ORDER_CANCELLED, T0 + 12, NULL), SOUK_OK);
    assert_int_equal(store_order_transition(s, "SK-T0001", WAID, STORE_ORDER_CANCELLED, T0 + 13, NULL),
                     SOUK_ESTATE);
    assert_int_equal(store_order_transition(s, "SK-T0001", WAID, STORE_ORDER_CONFIRMED, T0 + 13, NULL),
                     SOUK_ESTATE);
    assert_int_equal(store_order_transition(s, "SK-none", WAID, STORE_ORDER_CONFIRMED, T0, NULL),
                     SOUK_ENOTFOUND);
}

static void test_order_place(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    store_product_t cat[] = { s_product("TEA", 450, 10), s_product("CUP", 1200, 1),
                              s_product("USD-ITEM", 100, 5) };
    cat[2].currency = "USD";
    assert_int_equal(store_product_upsert(s, cat, 3, NULL), SOUK_OK);

    store_order_line_t lines[] = { { "TEA", 3 }, { "CUP", 1 } };
    store_order_request_t req = { .waid = WAID, .idem_key = "turn:SM9:place", .note = "gift wrap",
                                  .lines = lines, .n_lines = 2, .now_ms = T0 };
    store_order_t o, again;
    assert_int_equal(store_order_place(s, &req, &o, NULL), SOUK_OK);
    assert_int_equal(o.total_cents, 3 * 450 + 1200);
    assert_string_equal(o.currency, "EUR");
    assert_int_equal(o.status, STORE_ORDER_PENDING);
    assert_string_equal(o.note, "gift wrap");
    assert_non_null(strstr(o.items, "\"sku\":\"TEA\""));
    assert_non_null(strstr(o.items, "\"qty\":3"));
    assert_non_null(strstr(o.items, "\"unit_cents\":1200"));
    assert_int_equal(o.items[0], '[');
    assert_int_equal(s_stock(s, "TEA"), 7);
    assert_int_equal(s_stock(s, "CUP"), 0);

    /* the same request again: the first order, nothing taken twice */
    assert_int_equal(store_order_place(s, &req, &again, NULL), SOUK_EEXISTS);
    assert_string_equal(again.order_id, o.order_id);
    assert_int_equal(s_stock(s, "TEA"), 7);
    store_order_clear(&again);
    store_order_clear(&o);

    /* a short line: all or nothing */
    size_t bad = 99;
    req.idem_key = "turn:SM10:place";
    assert_int_equal(store_order_place(s, &req, &o, &bad), SOUK_ESTOCK);
    assert_int_equal(bad, 1);
    assert_int_equal(s_stock(s, "TEA"), 7);             /* the first line was given back */
    store_order_line_t unknown[] = { { "TEA", 1 }, { "GHOST", 1 } };
    req.lines = unknown;
    assert_int_equal(store_order_place(s, &req, NULL, &bad), SOUK_ENOTFOUND);
    assert_int_equal(bad, 1);
    store_order_line_t mixed[] = { { "TEA", 1 }, { "USD-ITEM", 1 } };
    req.lines = mixed;
    assert_int_equal(store_order_place(s, &req, NULL, &bad), SOUK_EINVAL);
    assert_int_equal(s_stock(s, "TEA"), 7);
    assert_int_equal(s_stock(s, "USD-ITEM"), 5);
    keys_t k = { 0 };
    assert_int_equal(store_order_list_user(s, WAID, s_order_key, &k), SOUK_OK);
    assert_int_equal(k.n, 1);
}

/* ---- tickets and leases ------------------------------------------------------------- */

static void test_tickets(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    store_order_t order = { .order_id = "SK-AAAAA", .waid = WAID, .items = "[]", .currency = "EUR",
                            .idem_key = "o1", .created_ms = T0 };
    assert_int_equal(store_order_put(s, &order, NULL), SOUK_OK);
    store_ticket_t t = { .waid = WAID, .subject = "Late", .message = "Where is it?",
                         .order_id = "SK-AAAAA", .idem_key = "turn:SM3:ticket", .created_ms = T0 };
    store_ticket_t first, again;
    assert_int_equal(store_ticket_put(s, &t, &first), SOUK_OK);
    assert_int_equal(strncmp(first.ticket_id, "TK-", 3), 0);
    assert_int_equal(first.status, STORE_TICKET_OPEN);
    assert_int_equal(store_ticket_put(s, &t, &again), SOUK_EEXISTS);
    assert_string_equal(again.ticket_id, first.ticket_id);
    store_ticket_clear(&again);

    /* an order of someone else cannot be referenced */
    store_ticket_t theirs = { .waid = OTHER, .subject = "x", .message = "y", .order_id = "SK-AAAAA",
                              .idem_key = "turn:SM4:ticket", .created_ms = T0 };
    assert_int_equal(store_ticket_put(s, &theirs, NULL), SOUK_ENOTFOUND);
    theirs.order_id = NULL;
    assert_int_equal(store_ticket_put(s, &theirs, NULL), SOUK_OK);

    store_ticket_t got;
    assert_int_equal(store_ticket_get(s, first.ticket_id, WAID, &got), SOUK_OK);
    assert_string_equal(got.order_id, "SK-AAAAA");
    store_ticket_clear(&got);
    assert_int_equal(store_ticket_get(s, first.ticket_id, OTHER, &got), SOUK_ENOTFOUND);
    assert_int_equal(store_ticket_close(s, first.ticket_id, OTHER, T0), SOUK_ENOTFOUND);
    assert_int_equal(store_ticket_close(s, first.ticket_id, WAID, T0 + 1), SOUK_OK);
    assert_int_equal(store_ticket_close(s, first.ticket_id, WAID, T0 + 2), SOUK_ESTATE);
    keys_t k = { 0 };
    assert_int_equal(store_ticket_list_user(s, WAID, s_ticket_key, &k), SOUK_OK);
    assert_int_equal(k.n, 1);
    k = (keys_t) { 0 };
    assert_int_equal(store_ticket_list_all(s, s_ticket_key, &k), SOUK_OK);
    assert_int_equal(k.n, 2);
    store_ticket_clear(&first);
}

static void test_leases(void **state)
{
    store_t *s = ((fixture_t *) *state)->store;
    assert_int_equal(store_lease_acquire(s, "session:" WAID, "node-a", 1000, T0), SOUK_OK);
    assert_int_equal(store_lease_acquire(s, "session:" WAID, "node-b", 1000, T0 + 500), SOUK_ECONFLICT);
    assert_int_equal(store_lease_acquire(s, "session:" WAID, "node-a", 1000, T0 + 500), SOUK_OK);
    assert_int_equal(store_lease_acquire(s, "session:" WAID, "node-b", 1000, T0 + 1499), SOUK_ECONFLICT);
    assert_int_equal(store_lease_acquire(s, "session:" WAID, "node-b", 1000, T0 + 1500), SOUK_OK);
    assert_int_equal(store_lease_release(s, "session:" WAID, "node-a"), SOUK_ECONFLICT);
    assert_int_equal(store_lease_release(s, "session:" WAID, "node-b"), SOUK_OK);
    assert_int_equal(store_lease_acquire(s, "session:" WAID, "node-a", 1000, T0 + 1600), SOUK_OK);
}

/* Eight processes take a free lease at once: exactly one gets it. */
static void test_lease_race(void **state)
{
    fixture_t *f = *state;
    store_close(&f->store);     /* a handle must not cross fork() */
    for (int round = 0; round < 5; round++) {
        char name[32];
        snprintf(name, sizeof name, "session:race%d", round);
        int gate[2];
        assert_int_equal(pipe(gate), 0);
        pid_t pids[8];
        for (int k = 0; k < 8; k++) {
            pids[k] = fork();
            assert_true(pids[k] >= 0);
            if (pids[k] == 0) {
                store_t *s = NULL;
                char c, owner[16];
                close(gate[1]);
                snprintf(owner, sizeof owner, "node-%d", k);
                if (store_open(s_backend, f->dir, NULL, &s, NULL, 0) != SOUK_OK
                    || read(gate[0], &c, 1) < 0)
                    _exit(3);
                int rc = store_lease_acquire(s, name, owner, 60000, T0);
                store_close(&s);
                _exit(rc == SOUK_OK ? 0 : rc == SOUK_ECONFLICT ? 1 : 2);
            }
        }
        close(gate[0]);
        usleep(20000);
        close(gate[1]);
        int wins = 0, losses = 0;
        for (int k = 0; k < 8; k++) {
            int st;
            assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
            assert_true(WIFEXITED(st));
            wins += WEXITSTATUS(st) == 0;
            losses += WEXITSTATUS(st) == 1;
        }
        assert_int_equal(wins, 1);
        assert_int_equal(losses, 7);
    }
    f->store = s_open(f, NULL);
}

/* ---- many processes -------------------------------------------------------------------- */

#define WRITERS 8
/* dynalite (one node.js process) does a few thousand requests a second */
#define ROWS_EACH (strcmp(s_backend, "sqlite") == 0 ? 2000 : 100)

typedef struct {
    int errors;
    int writes;
    int64_t max_ns, total_ns;
} writer_report_t;

/* One child: its own handle, ROWS_EACH inbound puts, each followed by an
 * outbox put and the outbox's walk queued -> sending -> sent. */
static void s_writer(const char *dir, int k, int gate, int report)
{
    store_t *s = NULL;
    writer_report_t r = { 0 };
    char c;
    if (store_open(s_backend, dir, NULL, &s, NULL, 0) != SOUK_OK || read(gate, &c, 1) < 0)
        _exit(2);
    char waid[24];
    snprintf(waid, sizeof waid, "1555000%04d", k);
    for (int i = 0; i < ROWS_EACH; i++) {
        char sid[32], key[40], tw[40];
        snprintf(sid, sizeof sid, "SM%d-%d", k, i);
        snprintf(key, sizeof key, "r:%s", sid);
        snprintf(tw, sizeof tw, "TW%d-%d", k, i);
        store_inbound_t m = s_msg(sid, waid, T0 + i);
        store_outbox_t o = s_reply(key, waid, STORE_OUTBOX_QUEUED, T0 + i);
        store_outbox_change_t lease = { .count_attempt = true, .next_attempt_ms = T0 + i + 30000 };
        store_outbox_change_t sent = { .twilio_sid = tw, .now_ms = T0 + i + 1 };
        for (int step = 0; step < 4; step++) {
            int64_t t = s_now_ns();
            int rc = step == 0 ? store_inbound_put(s, &m)
                   : step == 1 ? store_outbox_put(s, &o, NULL)
                   : step == 2 ? store_outbox_transition(s, key, STORE_OUTBOX_QUEUED, STORE_OUTBOX_SENDING,
                                                         &lease, NULL)
                               : store_outbox_transition(s, key, STORE_OUTBOX_SENDING, STORE_OUTBOX_SENT,
                                                         &sent, NULL);
            t = s_now_ns() - t;
            r.writes++;
            r.errors += rc != SOUK_OK;
            r.total_ns += t;
            if (t > r.max_ns)
                r.max_ns = t;
            if (rc != SOUK_OK)
                fprintf(stderr, "writer %d row %d step %d: %s: %s\n", k, i, step, souk_errname(rc),
                        store_last_error(s));
        }
    }
    store_close(&s);
    _exit(write(report, &r, sizeof r) == (ssize_t) sizeof r ? 0 : 3);
}

static void test_many_writers(void **state)
{
    fixture_t *f = *state;
    store_close(&f->store);     /* a handle must not cross fork() */
    int gate[2], report[2];
    assert_int_equal(pipe(gate), 0);
    assert_int_equal(pipe(report), 0);
    pid_t pids[WRITERS];
    for (int k = 0; k < WRITERS; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            close(gate[1]);
            close(report[0]);
            s_writer(f->dir, k, gate[0], report[1]);
        }
    }
    close(gate[0]);
    close(report[1]);
    usleep(200000);             /* let every child open before the gate */
    int64_t t0 = s_now_ns();
    close(gate[1]);
    writer_report_t all = { 0 };
    for (int k = 0; k < WRITERS; k++) {
        int st;
        assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    int64_t wall = s_now_ns() - t0;
    writer_report_t r;
    while (read(report[0], &r, sizeof r) == (ssize_t) sizeof r) {
        all.errors += r.errors;
        all.writes += r.writes;
        all.total_ns += r.total_ns;
        if (r.max_ns > all.max_ns)
            all.max_ns = r.max_ns;
    }
    close(report[0]);
    printf("    %s: %d processes, %d writes in %.2f s = %.0f writes/s; per write mean %.1f us, max %.1f ms\n",
           s_backend, WRITERS, all.writes, wall / 1e9, all.writes / (wall / 1e9),
           all.total_ns / 1e3 / (all.writes ? all.writes : 1), all.max_ns / 1e6);
    assert_int_equal(all.writes, WRITERS * ROWS_EACH * 4);
    assert_int_equal(all.errors, 0);
    assert_true(all.max_ns < 1000000000);

    /* nothing lost */
    f->store = s_open(f, NULL);
    for (int k = 0; k < WRITERS; k++)
        for (int i = 0; i < ROWS_EACH; i++) {
            char sid[32], key[40], tw[40];
            snprintf(sid, sizeof sid, "SM%d-%d", k, i);
            snprintf(key, sizeof key, "r:%s", sid);
            snprintf(tw, sizeof tw, "TW%d-%d", k, i);
            store_inbound_t m;
            assert_int_equal(store_inbound_get(f->store, sid, &m), SOUK_OK);
            store_inbound_clear(&m);
            store_outbox_t o;
            assert_int_equal(store_outbox_get(f->store, key, &o), SOUK_OK);
            assert_int_equal(o.state, STORE_OUTBOX_SENT);
            assert_string_equal(o.twilio_sid, tw);
            assert_int_equal(o.attempts, 1);
            store_outbox_clear(&o);
        }
}

static void test_race_for_last_item(void **state)
{
    fixture_t *f = *state;
    store_product_t p = s_product("LAST", 100, 0);
    assert_int_equal(store_product_upsert(f->store, &p, 1, NULL), SOUK_OK);
    for (int round = 0; round < 20; round++) {
        assert_int_equal(store_product_give(f->store, "LAST", 1), SOUK_OK);
        store_close(&f->store);
        int gate[2];
        assert_int_equal(pipe(gate), 0);
        pid_t pids[2];
        for (int k = 0; k < 2; k++) {
            pids[k] = fork();
            assert_true(pids[k] >= 0);
            if (pids[k] == 0) {
                store_t *s = NULL;
                char c;
                close(gate[1]);
                if (store_open(s_backend, f->dir, NULL, &s, NULL, 0) != SOUK_OK || read(gate[0], &c, 1) < 0)
                    _exit(3);
                int rc = store_product_take(s, "LAST", 1);
                store_close(&s);
                _exit(rc == SOUK_OK ? 0 : rc == SOUK_ESTOCK ? 1 : 2);
            }
        }
        close(gate[0]);
        usleep(20000);
        close(gate[1]);
        int wins = 0, losses = 0;
        for (int k = 0; k < 2; k++) {
            int st;
            assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
            assert_true(WIFEXITED(st));
            wins += WEXITSTATUS(st) == 0;
            losses += WEXITSTATUS(st) == 1;
        }
        assert_int_equal(wins, 1);
        assert_int_equal(losses, 1);
        f->store = s_open(f, NULL);
        assert_int_equal(s_stock(f->store, "LAST"), 0);
    }
}

/* A writer killed in the middle of a big import: the import leaves no
 * trace and the next writer goes on at once (it inherits the lock). */
static void test_crash_mid_import(void **state)
{
    if (strcmp(s_backend, "sqlite") != 0)
        skip();     /* SQLite's writer lock and one-transaction import */
    fixture_t *f = *state;
    enum { ROWS = 200000 };
    store_close(&f->store);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_t *s = NULL;
        store_product_t *rows = calloc(ROWS, sizeof *rows);
        char (*skus)[16] = calloc(ROWS, 16);
        if (!rows || !skus || store_open(s_backend, f->dir, NULL, &s, NULL, 0) != SOUK_OK)
            _exit(2);
        for (int i = 0; i < ROWS; i++) {
            snprintf(skus[i], 16, "BULK-%06d", i);
            rows[i] = s_product(skus[i], 100, 1);
        }
        if (write(ready[1], "go", 2) != 2)
            _exit(3);
        store_product_upsert(s, rows, ROWS, NULL);
        _exit(0);               /* too fast: the parent reports it */
    }
    close(ready[1]);
    char buf[2];
    assert_int_equal(read(ready[0], buf, 2), 2);
    close(ready[0]);
    usleep(30000);
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));   /* else the import finished before the kill */

    f->store = s_open(f, NULL);
    int64_t t = s_now_ns();
    store_product_t p = s_product("AFTER", 100, 1);
    assert_int_equal(store_product_upsert(f->store, &p, 1, NULL), SOUK_OK);
    t = s_now_ns() - t;
    printf("    %s: first write after the crash took %.2f ms\n", s_backend, t / 1e6);
    assert_true(t < 1000000000);
    int64_t n = -1;
    assert_int_equal(store_product_count(f->store, &n), SOUK_OK);
    assert_int_equal(n, 1);
}

/* Says on the pipe that the child is about to act. */
static void s_ready(int fd)
{
    if (write(fd, "go", 2) != 2)
        _exit(3);
    close(fd);
}

/* Forks a child that opens its own handle and runs body, which calls
 * s_ready(fd) just before it acts; returns the pid once it has. */
static pid_t s_spawn(const fixture_t *f, void (*body)(store_t *s, int ready_fd))
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_t *s = NULL;
        close(ready[0]);
        if (store_open(s_backend, f->dir, NULL, &s, NULL, 0) != SOUK_OK)
            _exit(2);
        body(s, ready[1]);
        _exit(0);
    }
    close(ready[1]);
    char buf[2];
    assert_int_equal(read(ready[0], buf, 2), 2);
    close(ready[0]);
    return pid;
}

static void s_import_bulk(store_t *s, int ready_fd)
{
    enum { ROWS = 200000 };
    store_product_t *rows = calloc(ROWS, sizeof *rows);
    char (*skus)[16] = calloc(ROWS, 16);
    if (!rows || !skus)
        _exit(2);
    for (int i = 0; i < ROWS; i++) {
        snprintf(skus[i], 16, "BULK-%06d", i);
        rows[i] = s_product(skus[i], 100, 1);
    }
    s_ready(ready_fd);
    _exit(store_product_upsert(s, rows, ROWS, NULL) == SOUK_OK ? 0 : 1);
}

static void s_take_one(store_t *s, int ready_fd)
{
    s_ready(ready_fd);
    store_product_take(s, "AFTER", 1);
}

/* A process that dies inside the writers' queue, waiting for the lock
 * behind a long import: the import still lands and the next writer goes
 * on at once. */
static void test_crash_in_writer_queue(void **state)
{
    if (strcmp(s_backend, "sqlite") != 0)
        skip();     /* SQLite's writer lock and one-transaction import */
    fixture_t *f = *state;
    store_product_t p = s_product("AFTER", 100, 5);
    assert_int_equal(store_product_upsert(f->store, &p, 1, NULL), SOUK_OK);
    store_close(&f->store);
    pid_t importer = s_spawn(f, s_import_bulk);
    usleep(30000);
    pid_t waiter = s_spawn(f, s_take_one);
    usleep(30000);
    kill(waiter, SIGKILL);
    int st;
    assert_int_equal(waitpid(waiter, &st, 0), waiter);
    assert_int_equal(waitpid(importer, &st, 0), importer);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    f->store = s_open(f, NULL);
    int64_t t = s_now_ns();
    assert_int_equal(store_product_take(f->store, "AFTER", 1), SOUK_OK);
    t = s_now_ns() - t;
    printf("    %s: first write after a death in the queue took %.2f ms\n", s_backend, t / 1e6);
    assert_true(t < 1000000000);
    int64_t n = -1;
    assert_int_equal(store_product_count(f->store, &n), SOUK_OK);
    assert_int_equal(n, 200001);
    assert_true(s_stock(f->store, "AFTER") >= 3);   /* the waiter's take may or may not have landed */
}

/* With the lock held past the busy timeout, a write gives up with
 * SOUK_EBUSY in about that time and writes nothing. */
static void test_busy_timeout(void **state)
{
    if (strcmp(s_backend, "sqlite") != 0)
        skip();     /* SQLite's writer lock and one-transaction import */
    fixture_t *f = *state;
    store_product_t p = s_product("AFTER", 100, 5);
    assert_int_equal(store_product_upsert(f->store, &p, 1, NULL), SOUK_OK);
    store_close(&f->store);
    pid_t importer = s_spawn(f, s_import_bulk);
    f->store = s_open(f, &(store_options_t) { .busy_timeout_ms = 50 });
    usleep(30000);
    int64_t t = s_now_ns();
    int rc = store_product_take(f->store, "AFTER", 1);
    t = s_now_ns() - t;
    int st;
    assert_int_equal(waitpid(importer, &st, 0), importer);
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(rc, SOUK_EBUSY);
    assert_true(t >= 40000000 && t < 1000000000);
    assert_int_equal(s_stock(f->store, "AFTER"), 5);
}

/* ---- DynamoDB: placing an order without transactions ------------------------------------ */

#define CRASH_LINES 12

/* A child placing one order of CRASH_LINES lines, killed after `delay_us`;
 * then the same request again in the parent: each line's stock is taken
 * exactly once and one order holds them, wherever the kill landed (before
 * the guard, among the takes, between the order and its clean-up). */
static void test_dynamo_place_killed_anywhere(void **state)
{
    if (strcmp(s_backend, "dynamodb") != 0)
        skip();     /* SQLite places an order in one transaction */
    fixture_t *f = *state;
    store_product_t cat[CRASH_LINES];
    char skus[CRASH_LINES][16];
    for (int i = 0; i < CRASH_LINES; i++) {
        snprintf(skus[i], sizeof skus[i], "K-%02d", i);
        cat[i] = s_product(skus[i], 100 + i, 1000);
    }
    assert_int_equal(store_product_upsert(f->store, cat, CRASH_LINES, NULL), SOUK_OK);
    store_order_line_t lines[CRASH_LINES];
    for (int i = 0; i < CRASH_LINES; i++)
        lines[i] = (store_order_line_t) { skus[i], 1 + i % 3 };
    int killed_mid = 0;
    for (int round = 0; round < 16; round++) {
        char idem[32];
        snprintf(idem, sizeof idem, "turn:SMK%d:place", round);
        store_order_request_t req = { .waid = WAID, .idem_key = idem, .lines = lines,
                                      .n_lines = CRASH_LINES, .now_ms = T0 + round };
        int64_t before[CRASH_LINES];
        for (int i = 0; i < CRASH_LINES; i++)
            before[i] = s_stock(f->store, skus[i]);
        int ready[2];
        assert_int_equal(pipe(ready), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            store_t *s = NULL;
            close(ready[0]);
            if (store_open(s_backend, f->dir, NULL, &s, NULL, 0) != SOUK_OK)
                _exit(2);
            s_ready(ready[1]);
            _exit(store_order_place(s, &req, NULL, NULL) == SOUK_OK ? 0 : 1);
        }
        close(ready[1]);
        char buf[2];
        assert_int_equal(read(ready[0], buf, 2), 2);
        close(ready[0]);
        usleep((useconds_t) (round * 2500));    /* 0 to 37 ms: every step of ~30 requests */
        kill(pid, SIGKILL);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        killed_mid += WIFSIGNALED(st);

        store_order_t o;
        int rc = store_order_place(f->store, &req, &o, NULL);
        assert_true(rc == SOUK_OK || rc == SOUK_EEXISTS);
        assert_int_equal(o.total_cents > 0, 1);
        store_order_clear(&o);
        for (int i = 0; i < CRASH_LINES; i++)
            assert_int_equal(s_stock(f->store, skus[i]), before[i] - lines[i].qty);
        /* and again: nothing more */
        assert_int_equal(store_order_place(f->store, &req, NULL, NULL), SOUK_EEXISTS);
        assert_int_equal(s_stock(f->store, skus[0]), before[0] - lines[0].qty);
    }
    keys_t k = { 0 };
    assert_int_equal(store_order_list_user(f->store, WAID, s_order_key, &k), SOUK_OK);
    assert_int_equal(k.n, 16);                  /* one order per request */
    printf("    dynamodb: %d of 16 placements killed before they finished\n", killed_mid);
    assert_true(killed_mid >= 4);
}

/* Two buyers of the last item, through whole two-line orders: one order,
 * stock 0, and the loser's other line given back. */
static void test_place_race_last_item(void **state)
{
    fixture_t *f = *state;
    store_product_t p[2] = { s_product("LAST", 100, 0), s_product("MANY", 100, 100) };
    assert_int_equal(store_product_upsert(f->store, p, 2, NULL), SOUK_OK);
    for (int round = 0; round < 10; round++) {
        assert_int_equal(store_product_give(f->store, "LAST", 1), SOUK_OK);
        store_close(&f->store);     /* a handle must not cross fork() */
        int gate[2];
        assert_int_equal(pipe(gate), 0);
        pid_t pids[2];
        for (int k = 0; k < 2; k++) {
            pids[k] = fork();
            assert_true(pids[k] >= 0);
            if (pids[k] == 0) {
                store_t *s = NULL;
                char c, idem[32];
                close(gate[1]);
                snprintf(idem, sizeof idem, "race:%d:%d", round, k);
                store_order_line_t l[] = { { "MANY", 1 }, { "LAST", 1 } };
                store_order_request_t req = { .waid = k ? OTHER : WAID, .idem_key = idem,
                                              .lines = l, .n_lines = 2, .now_ms = T0 };
                if (store_open(s_backend, f->dir, NULL, &s, NULL, 0) != SOUK_OK
                    || read(gate[0], &c, 1) < 0)
                    _exit(3);
                int rc = store_order_place(s, &req, NULL, NULL);
                store_close(&s);
                _exit(rc == SOUK_OK ? 0 : rc == SOUK_ESTOCK ? 1 : 2);
            }
        }
        close(gate[0]);
        usleep(20000);
        close(gate[1]);
        int wins = 0, losses = 0;
        for (int k = 0; k < 2; k++) {
            int st;
            assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
            assert_true(WIFEXITED(st));
            wins += WEXITSTATUS(st) == 0;
            losses += WEXITSTATUS(st) == 1;
        }
        f->store = s_open(f, NULL);
        assert_int_equal(wins, 1);
        assert_int_equal(losses, 1);
        assert_int_equal(s_stock(f->store, "LAST"), 0);
        assert_int_equal(s_stock(f->store, "MANY"), 100 - (round + 1));  /* the loser gave it back */
    }
}

/* A store that cannot be reached: SOUK_EUNAVAIL after the retries, nothing
 * half done; the same handle works again once it is back. */
static void test_dynamo_unreachable(void **state)
{
    if (strcmp(s_backend, "dynamodb") != 0)
        skip();
    fixture_t *f = *state;
    char *endpoint = strdup(getenv("DYNAMODB_ENDPOINT"));
    store_close(&f->store);
    setenv("DYNAMODB_ENDPOINT", "http://127.0.0.1:9", 1);     /* discard: nothing listens */
    store_t *s = s_open(f, NULL);
    store_inbound_t m = s_msg("SM-down", WAID, T0);
    assert_int_equal(store_inbound_put(s, &m), SOUK_EUNAVAIL);
    assert_non_null(strstr(store_last_error(s), "127.0.0.1:9"));
    store_ops_t ops;
    assert_int_equal(store_ops(s, &ops), SOUK_OK);
    assert_true(ops.retries >= 3);
    store_close(&s);
    setenv("DYNAMODB_ENDPOINT", endpoint, 1);
    free(endpoint);
    f->store = s_open(f, NULL);
    assert_int_equal(store_inbound_put(f->store, &m), SOUK_OK);
    assert_int_equal(store_ops(f->store, &ops), SOUK_OK);
    assert_int_equal(ops.writes, 1);
    assert_int_equal(ops.reads, 0);
}

/* History stays bounded in items, not only in what is read back: a user
 * with history_keep 5 who said 60 things has at most 5 + 8 history items
 * (each entry its own item; every 8th append trims). Counted in the table. */
static void test_dynamo_history_bounded(void **state)
{
    if (strcmp(s_backend, "dynamodb") != 0)
        skip();
    fixture_t *f = *state;
    store_close(&f->store);
    f->store = s_open(f, &(store_options_t) { .history_keep = 5 });
    for (int i = 0; i < 60; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "SM%d", i);
        store_history_t h = { .waid = WAID, .dir = STORE_DIR_IN, .msg_sid = i % 2 ? sid : NULL,
                              .text = "x", .ts_ms = T0 + i };
        assert_int_equal(store_history_append(f->store, &h), SOUK_OK);
    }
    dynamo_t *d = NULL;
    assert_int_equal(dynamo_open(&d, NULL, 0), SOUK_OK);
    char table[128];
    snprintf(table, sizeof table, "%ssouk", getenv("SOUK_TABLE_PREFIX"));
    json_t *req = json_pack("{s:s, s:s, s:{s:{s:s}, s:{s:s}}, s:s}", "TableName", table,
                            "KeyConditionExpression", "pk = :pk AND begins_with(sk, :h)",
                            "ExpressionAttributeValues", ":pk", "S", "U#" WAID, ":h", "S", "H#",
                            "Select", "COUNT");
    json_t *resp = NULL;
    assert_int_equal(dynamo_call(d, "Query", req, &resp), SOUK_OK);
    json_int_t n = json_integer_value(json_object_get(resp, "Count"));
    printf("    dynamodb: 60 entries, keep 5: %lld history items stored\n", (long long) n);
    assert_true(n >= 5 && n <= 5 + 8);
    json_decref(resp);
    json_decref(req);
    dynamo_close(&d);
    keys_t k = { 0 };
    assert_int_equal(store_history_recent(f->store, WAID, 100, s_history_key, &k), SOUK_OK);
    assert_int_equal(k.n, 5);
}

/* ---- DynamoDB: a write that lands but whose answer is lost ---------------------------------
 * A proxy between the store and dynalite forwards every request, and for the
 * first one that matches (an operation and a piece of its body) throws
 * dynalite's answer away and says 500 instead: the write happened, the
 * client retries it (DynamoDB's own advice for 5xx), and its condition now
 * finds the item the first attempt wrote. */

typedef struct {
    int fd, upstream_port;
    pthread_t thread;
    const char *op, *needle;    /* what to fail once */
    int failed;
} lossy_t;

static ssize_t s_read_http(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    ssize_t n = 0;
    while (!end && len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0) {
        len += (size_t) n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return -1;
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    size_t want = (size_t) (end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
    while (len < want && len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t) n;
    buf[len] = '\0';
    return (ssize_t) len;
}

static void *s_lossy_serve(void *arg)
{
    lossy_t *p = arg;
    static char req[1 << 16], resp[1 << 16];
    for (;;) {
        int c = accept(p->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        ssize_t n;
        while ((n = s_read_http(c, req, sizeof req)) > 0) {
            int u = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) p->upstream_port),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
            ssize_t m = -1;
            if (u >= 0 && connect(u, (struct sockaddr *) &a, sizeof a) == 0
                && write(u, req, (size_t) n) == n)
                m = s_read_http(u, resp, sizeof resp);
            if (u >= 0)
                close(u);
            if (m <= 0)
                break;
            char target[128];
            snprintf(target, sizeof target, "DynamoDB_20120810.%s\r", p->op);
            if (!p->failed && strstr(req, target) && strstr(req, p->needle)) {
                p->failed++;
                static const char e500[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: "
                    "application/x-amz-json-1.0\r\nContent-Length: 53\r\n\r\n"
                    "{\"__type\":\"com.amazon.coral.service#InternalFailure\"}";
                m = (ssize_t) strlen(e500);
                memcpy(resp, e500, (size_t) m);
            }
            if (write(c, resp, (size_t) m) != m)
                break;
        }
        close(c);
    }
}

/* Starts the proxy and points DYNAMODB_ENDPOINT at it; returns the old one. */
static char *s_lossy_start(lossy_t *p)
{
    char *old = strdup(getenv("DYNAMODB_ENDPOINT"));
    p->upstream_port = atoi(strrchr(old, ':') + 1);
    p->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(p->fd, (struct sockaddr *) &a, sizeof a), 0);
    assert_int_equal(listen(p->fd, 8), 0);
    assert_int_equal(getsockname(p->fd, (struct sockaddr *) &a, &len), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    setenv("DYNAMODB_ENDPOINT", url, 1);
    assert_int_equal(pthread_create(&p->thread, NULL, s_lossy_serve, p), 0);
    return old;
}

static void s_lossy_stop(lossy_t *p, char *old)
{
    shutdown(p->fd, SHUT_RDWR);
    close(p->fd);
    pthread_join(p->thread, NULL);
    setenv("DYNAMODB_ENDPOINT", old, 1);
    free(old);
}

/* The order's put, the guard's, a line's take, and a ticket's put each land
 * with their answer lost: one order or ticket, each line taken once. */
static void test_dynamo_lost_answers(void **state)
{
    if (strcmp(s_backend, "dynamodb") != 0)
        skip();
    fixture_t *f = *state;
    store_product_t p = s_product("TEA", 450, 100);
    assert_int_equal(store_product_upsert(f->store, &p, 1, NULL), SOUK_OK);
    static const struct { const char *op, *needle; } faults[] = {
        { "PutItem", "ORDER#" }, { "PutItem", "OIDEM#" }, { "UpdateItem", "PROD#TEA" },
        { "UpdateItem", "phase = :ph" },
    };
    int64_t stock = 100;
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) {
        lossy_t lossy = { .op = faults[i].op, .needle = faults[i].needle };
        char *old = s_lossy_start(&lossy);
        store_t *s = s_open(f, NULL);
        char idem[32];
        snprintf(idem, sizeof idem, "turn:SML%zu:place", i);
        store_order_line_t l[] = { { "TEA", 2 } };
        store_order_request_t req = { .waid = WAID, .idem_key = idem, .lines = l, .n_lines = 1,
                                      .now_ms = T0 };
        store_order_t o;
        int rc = store_order_place(s, &req, &o, NULL);
        store_close(&s);
        s_lossy_stop(&lossy, old);
        if (lossy.failed != 1)
            fail_msg("fault %zu (%s %s) did not happen", i, faults[i].op, faults[i].needle);
        /* the take (a non-idempotent UpdateItem) answered 500 and retried:
         * its mark stops the second take */
        assert_true(rc == SOUK_OK || rc == SOUK_EEXISTS);
        store_order_clear(&o);
        stock -= 2;
        assert_int_equal(s_stock(f->store, "TEA"), stock);
    }
    keys_t k = { 0 };
    assert_int_equal(store_order_list_user(f->store, WAID, s_order_key, &k), SOUK_OK);
    assert_int_equal(k.n, 4);

    lossy_t lossy = { .op = "PutItem", .needle = "TICKET#" };
    char *old = s_lossy_start(&lossy);
    store_t *s = s_open(f, NULL);
    store_ticket_t t = { .waid = WAID, .subject = "Late", .message = "?", .idem_key = "tk:1",
                         .created_ms = T0 };
    assert_int_equal(store_ticket_put(s, &t, NULL), SOUK_OK);
    store_close(&s);
    s_lossy_stop(&lossy, old);
    assert_int_equal(lossy.failed, 1);
    k = (keys_t) { 0 };
    assert_int_equal(store_ticket_list_user(f->store, WAID, s_ticket_key, &k), SOUK_OK);
    assert_int_equal(k.n, 1);
}

/* ---- runner ------------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_open_twice_keeps_data),
        T(test_open_errors),
        T(test_newer_schema_refused),
        T(test_concurrent_first_open),
        T(test_bad_input),
        T(test_users),
        T(test_inbound),
        T(test_lists_page_stop_reenter),
        T(test_history),
        T(test_batch),
        T(test_outbox_put_get),
        T(test_outbox_transitions),
        T(test_outbox_due_and_offered),
        T(test_outbox_list_all),
        T(test_delivery_out_of_order),
        T(test_delivery_before_sid_recorded),
        T(test_idem),
        T(test_products),
        T(test_orders_put_get_identity),
        T(test_orders_lists_and_status),
        T(test_order_place),
        T(test_tickets),
        T(test_leases),
        T(test_lease_race),
        T(test_many_writers),
        T(test_race_for_last_item),
        T(test_crash_mid_import),
        T(test_crash_in_writer_queue),
        T(test_busy_timeout),
        T(test_dynamo_place_killed_anywhere),
        T(test_place_race_last_item),
        T(test_dynamo_unreachable),
        T(test_dynamo_lost_answers),
        T(test_dynamo_history_bounded),
#undef T
    };
    s_backend = dynalite_backend();
    int up = dynalite_start();
    if (up != 0)
        return up > 0 ? 77 : 1;     /* 77: meson's "skipped" */
    char name[64];
    snprintf(name, sizeof name, "store/%s", s_backend);
    int failures = cmocka_run_group_tests_name(name, tests, NULL, NULL);
    dynalite_stop();
    return failures;
}
