/* End to end through the real HTTP webhook: souk serve with every actor,
 * signed requests over loopback, replies inline or from the console outbox
 * (events stream). Each test starts its own souk in its own data folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynalite.h"
#include "harness.h"
#include "proc_fd.h"

static const char *const fast_env[] = { "SOUK_DEBOUNCE_MS=0", NULL };

static void test_inline_reply_echoes(void **state)
{
    (void)state;
    harness_t h;
    assert_int_equal(harness_start(&h, fast_env), 0);
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550001001", "Ana", "hello there", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.answer, "inline");
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "hello there"));
    harness_reply_clear(&r);
    assert_int_equal(harness_stop(&h, false), 0);
}

/* A quiet session hibernates (closes its store handle: no descriptor of
 * souk.db left, the counter says so), and its next message wakes it: the
 * same process answers it as an awake one would, and hibernates again. */
static void test_idle_session_hibernates_and_wakes(void **state)
{
    (void)state;
    /* on DynamoDB a node id is always set: a session renews its lease
     * through the store, so it keeps the handle */
    if (strcmp(dynalite_backend(), "sqlite") != 0)
        skip();
    const char *const env[] = { "SOUK_DEBOUNCE_MS=0", "SOUK_SESSION_HIBERNATE_MS=200", NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550001009", "Hana", "first words", NULL, NULL, &r), 0);
    assert_string_equal(r.answer, "inline");
    harness_reply_clear(&r);
    char db[160];
    snprintf(db, sizeof db, "%s/souk.db", h.data);
    pid_t pid = harness_actor_pid(&h, "s-15550001009");
    assert_true(pid > 0);
    assert_true(harness_metric_await(&h, "souk_session_hibernations_total", 1, 10000) >= 1);
    assert_false(proc_has_fd_to(pid, db));

    assert_int_equal(harness_send(&h, "15550001009", "Hana", "second words", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.answer, "inline");
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "second words"));
    harness_reply_clear(&r);
    assert_int_equal(harness_actor_pid(&h, "s-15550001009"), pid); /* woken, not restarted */
    assert_true(harness_metric_await(&h, "souk_session_hibernations_total", 2, 10000) >= 2);
    assert_int_equal(harness_stop(&h, false), 0);
}

static void test_duplicate_sid_processed_once(void **state)
{
    (void)state;
    harness_t h;
    assert_int_equal(harness_start(&h, fast_env), 0);
    char sid[35];
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550001002", "Bo", "first", NULL, sid, &r), 0);
    assert_string_equal(r.answer, "inline");
    harness_reply_clear(&r);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(harness_send(&h, "15550001002", "Bo", "first", sid, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.answer, "none");
        assert_null(r.message);
        harness_reply_clear(&r);
    }
    assert_int_equal(harness_stop(&h, false), 0);
}

/* The budget runs out before the answer (the debounce holds it back): the
 * webhook acknowledges, and the answer comes once through the sender. */
static void test_budget_expired_answer_goes_out_later(void **state)
{
    (void)state;
    const char *const env[] = { "SOUK_REPLY_BUDGET_MS=100", "SOUK_DEBOUNCE_MS=600", NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550001003", "Cy", "slow one", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.answer, "later");
    assert_non_null(r.message); /* the acknowledgement */
    assert_null(strstr(r.message, "slow one"));
    harness_reply_clear(&r);
    char *body = NULL;
    assert_int_equal(harness_wait_outbound(&h, "15550001003", 10000, &body), 0);
    assert_non_null(strstr(body, "slow one"));
    free(body);
    /* and only once */
    assert_int_equal(harness_wait_outbound(&h, "15550001003", 1500, &body), -1);
    assert_int_equal(harness_stop(&h, false), 0);
}

/* A burst within the debounce window is one turn: the earlier messages are
 * answered empty, the last one carries one answer that covers all. */
static void *s_send_thread(void *arg)
{
    void **a = arg;
    harness_reply_t *r = a[2];
    harness_send(a[0], "15550001004", "Di", a[1], NULL, NULL, r);
    return NULL;
}

static void test_debounce_answers_burst_once(void **state)
{
    (void)state;
    const char *const env[] = { "SOUK_DEBOUNCE_MS=800", NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    const char *texts[] = { "I want", "some shoes", "size 42" };
    harness_reply_t replies[3];
    pthread_t th[3];
    void *args[3][3];
    for (int i = 0; i < 3; i++) {
        args[i][0] = &h;
        args[i][1] = (void *)texts[i];
        args[i][2] = &replies[i];
        pthread_create(&th[i], NULL, s_send_thread, args[i]);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    int inline_n = 0, none_n = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(replies[i].status, 200);
        if (strcmp(replies[i].answer, "inline") == 0) {
            inline_n++;
            for (int k = 0; k < 3; k++)
                assert_non_null(strstr(replies[i].message, texts[k]));
        } else if (strcmp(replies[i].answer, "none") == 0) {
            none_n++;
        }
        harness_reply_clear(&replies[i]);
    }
    assert_int_equal(inline_n, 1);
    assert_int_equal(none_n, 2);
    assert_int_equal(harness_stop(&h, false), 0);
}

/* Many users at once: one session each, every reply goes to its own user. */
#define USERS 12
#define PER_USER 4

typedef struct {
    harness_t *h;
    int user;
    int ok;
} user_run_t;

static void *s_user(void *arg)
{
    user_run_t *u = arg;
    char waid[32], name[16];
    snprintf(waid, sizeof waid, "1555020%04d", u->user);
    snprintf(name, sizeof name, "U%d", u->user);
    for (int i = 0; i < PER_USER; i++) {
        char text[64];
        snprintf(text, sizeof text, "user %d message %d", u->user, i);
        harness_reply_t r;
        if (harness_send(u->h, waid, name, text, NULL, NULL, &r) == 0 && r.status == 200
            && strcmp(r.answer, "inline") == 0 && r.message && strstr(r.message, text))
            u->ok++;
        harness_reply_clear(&r);
    }
    return NULL;
}

static void test_concurrent_users_no_cross_talk(void **state)
{
    (void)state;
    harness_t h;
    assert_int_equal(harness_start(&h, fast_env), 0);
    pthread_t th[USERS];
    user_run_t runs[USERS];
    for (int i = 0; i < USERS; i++) {
        runs[i] = (user_run_t){ .h = &h, .user = i };
        pthread_create(&th[i], NULL, s_user, &runs[i]);
    }
    for (int i = 0; i < USERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < USERS; i++)
        assert_int_equal(runs[i].ok, PER_USER);
    json_t *st = harness_status(&h);
    assert_non_null(st);
    size_t i;
    json_t *a;
    int sessions = 0;
    json_array_foreach(json_object_get(st, "actors"), i, a)
        if (strcmp(json_string_value(json_object_get(a, "role")), "session") == 0)
            sessions++;
    json_decref(st);
    assert_int_equal(sessions, USERS);
    assert_int_equal(harness_stop(&h, false), 0);
}

static void test_bad_requests(void **state)
{
    (void)state;
    harness_t h;
    assert_int_equal(harness_start(&h, fast_env), 0);
    harness_reply_t r;
    const char *form = "MessageSid=SM1&From=whatsapp%3A%2B15550001005&WaId=15550001005&Body=hi";
    char sig[64];
    assert_int_equal(harness_sign("/webhooks/whatsapp", form, sig), 0);
    /* unsigned, wrongly signed */
    harness_post_raw(&h, "/webhooks/whatsapp", "application/x-www-form-urlencoded", form, NULL, &r);
    assert_int_equal(r.status, 403);
    harness_reply_clear(&r);
    harness_post_raw(&h, "/webhooks/whatsapp", "application/x-www-form-urlencoded", form,
                     "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", &r);
    assert_int_equal(r.status, 403);
    harness_reply_clear(&r);
    /* not form-encoded */
    harness_post_raw(&h, "/webhooks/whatsapp", "application/json", "{}", sig, &r);
    assert_int_equal(r.status, 415);
    harness_reply_clear(&r);
    /* WaId that is not From's number, properly signed */
    const char *mismatch = "MessageSid=SM2&From=whatsapp%3A%2B15550001005&WaId=15550009999&Body=hi";
    assert_int_equal(harness_sign("/webhooks/whatsapp", mismatch, sig), 0);
    harness_post_raw(&h, "/webhooks/whatsapp", "application/x-www-form-urlencoded", mismatch, sig,
                     &r);
    assert_int_equal(r.status, 400);
    harness_reply_clear(&r);
    /* still alive and well after all that */
    assert_int_equal(harness_send(&h, "15550001005", "Ed", "still there?", NULL, NULL, &r), 0);
    assert_string_equal(r.answer, "inline");
    harness_reply_clear(&r);
    assert_int_equal(harness_stop(&h, false), 0);
}

/* DynamoDB goes away with a message in flight and comes back: the webhook
 * still answers within its budget, the session that cannot reach the store
 * leaves with the message pending (restarted after its back-off, never
 * quarantined for the outage), and once the store is back the message gets
 * exactly one answer through the sender. */
static void test_store_outage_resumes(void **state)
{
    (void)state;
    if (strcmp(dynalite_backend(), "dynamodb") != 0)
        skip();     /* SQLite cannot be unreachable */
    const char *const env[] = { "SOUK_DEBOUNCE_MS=0", "SOUK_REPLY_BUDGET_MS=300", NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550001010", "Ed", "before", NULL, NULL, &r), 0);
    assert_string_equal(r.answer, "inline");
    harness_reply_clear(&r);

    dynalite_kill();
    assert_int_equal(harness_send(&h, "15550001010", "Ed", "during the outage", NULL, NULL, &r), 0);
    /* the budget held: the message could not be stored, so Twilio is not
     * told "delivered" (503, no 200); the gateway keeps it for the session,
     * which answers it by REST once the store is back */
    assert_int_equal(r.status, 503);
    harness_reply_clear(&r);
    souk_msg_t m;
    assert_int_equal(harness_wait_event(&h, "exited", "s-", 15000, &m), 0);
    souk_msg_clear(&m);
    assert_int_equal(dynalite_restart(), 0);

    char *body = NULL;
    assert_int_equal(harness_wait_outbound(&h, "15550001010", 30000, &body), 0);
    assert_non_null(strstr(body, "during the outage"));
    free(body);
    assert_int_equal(harness_wait_outbound(&h, "15550001010", 1500, &body), -1);   /* once */
    json_t *st = harness_status(&h);
    assert_non_null(st);
    assert_int_equal(json_integer_value(json_object_get(st, "quarantined")), 0);
    json_decref(st);
    assert_int_equal(harness_stop(&h, false), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_reply_echoes),
        cmocka_unit_test(test_duplicate_sid_processed_once),
        cmocka_unit_test(test_idle_session_hibernates_and_wakes),
        cmocka_unit_test(test_budget_expired_answer_goes_out_later),
        cmocka_unit_test(test_debounce_answers_burst_once),
        cmocka_unit_test(test_concurrent_users_no_cross_talk),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_store_outage_resumes),
    };
    /* on DynamoDB every test shares one table: their users and sids differ */
    int up = dynalite_start_persistent();
    if (up != 0)
        return up > 0 ? 77 : 1;     /* 77: meson's "skipped" */
    if (dynalite_fresh_table() != 0)
        return 1;
    int failures = cmocka_run_group_tests_name(dynalite_backend(), tests, NULL, NULL);
    dynalite_stop();
    return failures;
}
