/* The gateway's GET /metrics and its request counts, with the test playing
 * the supervisor (tests/gw_harness.h): a scrape asks the supervisor once
 * (METRICS_REQ) and is answered with its METRICS_REP, concurrent scrapes
 * share one question, a supervisor that does not answer gets a 503 after
 * GW_METRICS_WAIT_MS, a scraper that hangs up costs nothing, and every
 * answered request is counted in the heartbeats' metrics fragment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include "gw_harness.h"

#define SCRAPE "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
#define EXPOSITION "# TYPE souk_sessions_live gauge\nsouk_sessions_live 3\n"

static int setup(void **state)
{
    gwh_t *h = calloc(1, sizeof *h);
    const char *const env[] = { "SOUK_HEARTBEAT_MS=50", NULL };
    if (!h || gwh_start(h, env) != 0)
        return -1;
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    gwh_t *h = *state;
    gwh_stop(h);
    free(h);
    return 0;
}

static int s_scrape_send(gwh_t *h)
{
    int fd = gwh_http_send(h, SCRAPE, strlen(SCRAPE));
    assert_true(fd >= 0);
    return fd;
}

static void s_reply(gwh_t *h, const char *text)
{
    souk_msg_t m;
    assert_int_equal(gwh_control_recv(h, SOUK_MSG_METRICS_REQ, 5000, &m), 0);
    souk_msg_clear(&m);
    souk_msg_t r = { .type = SOUK_MSG_METRICS_REP };
    r.metrics_rep.text = (char *)text;
    assert_int_equal(gwh_control_send(h, &r), 0);
}

static void test_scrape_asks_the_supervisor(void **state)
{
    gwh_t *h = *state;
    int a = s_scrape_send(h);
    s_reply(h, EXPOSITION);
    gwh_resp_t r;
    assert_int_equal(gwh_http_read(a, 5000, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.headers, "content-type: text/plain; version=0.0.4"));
    assert_string_equal(r.body, EXPOSITION);
    gwh_resp_clear(&r);
    close(a);
    /* the next scrape asks again: nothing is cached */
    int c = s_scrape_send(h);
    s_reply(h, "souk_sessions_live 4\n");
    assert_int_equal(gwh_http_read(c, 5000, &r), 0);
    assert_string_equal(r.body, "souk_sessions_live 4\n");
    gwh_resp_clear(&r);
    close(c);
}

/* Scrapes that arrive while a question is out wait for its answer; the
 * order against the reply is the loop's, so every question is answered. */
static void test_concurrent_scrapes(void **state)
{
    gwh_t *h = *state;
    int fds[4];
    for (int i = 0; i < 4; i++)
        fds[i] = s_scrape_send(h);
    int answered = 0, questions = 0;
    for (long long end = gwh_now_ms() + 5000; answered < 4 && gwh_now_ms() < end;) {
        souk_msg_t m;
        if (gwh_control_recv(h, SOUK_MSG_METRICS_REQ, 200, &m) == 0) {
            souk_msg_clear(&m);
            questions++;
            souk_msg_t rep = { .type = SOUK_MSG_METRICS_REP };
            rep.metrics_rep.text = EXPOSITION;
            assert_int_equal(gwh_control_send(h, &rep), 0);
        }
        for (int i = 0; i < 4; i++) {
            gwh_resp_t r;
            struct pollfd p = { .fd = fds[i], .events = POLLIN };
            if (fds[i] < 0 || poll(&p, 1, 0) != 1)
                continue;
            assert_int_equal(gwh_http_read(fds[i], 5000, &r), 0);
            assert_int_equal(r.status, 200);
            assert_string_equal(r.body, EXPOSITION);
            gwh_resp_clear(&r);
            close(fds[i]);
            fds[i] = -1;
            answered++;
        }
    }
    assert_int_equal(answered, 4);
    assert_true(questions >= 1 && questions <= 4);
}

static void test_silent_supervisor_is_503(void **state)
{
    gwh_t *h = *state;
    long long start = gwh_now_ms();
    int fd = s_scrape_send(h);
    souk_msg_t m;
    assert_int_equal(gwh_control_recv(h, SOUK_MSG_METRICS_REQ, 5000, &m), 0);
    souk_msg_clear(&m);
    gwh_resp_t r;
    assert_int_equal(gwh_http_read(fd, 10000, &r), 0);
    assert_int_equal(r.status, 503);
    assert_true(gwh_now_ms() - start >= 1900); /* it waited GW_METRICS_WAIT_MS */
    gwh_resp_clear(&r);
    close(fd);
    /* a late answer finds nobody waiting, and the gateway goes on */
    souk_msg_t late = { .type = SOUK_MSG_METRICS_REP };
    late.metrics_rep.text = EXPOSITION;
    assert_int_equal(gwh_control_send(h, &late), 0);
    assert_int_equal(gwh_get(h, "/healthz", &r), 200);
    gwh_resp_clear(&r);
}

static void test_scraper_hangs_up(void **state)
{
    gwh_t *h = *state;
    int fd = s_scrape_send(h);
    souk_msg_t m;
    assert_int_equal(gwh_control_recv(h, SOUK_MSG_METRICS_REQ, 5000, &m), 0);
    souk_msg_clear(&m);
    close(fd);
    /* the gateway sees the close before our answer: /healthz proves it
     * has run its loop since */
    gwh_resp_t r;
    assert_int_equal(gwh_get(h, "/healthz", &r), 200);
    gwh_resp_clear(&r);
    souk_msg_t rep = { .type = SOUK_MSG_METRICS_REP };
    rep.metrics_rep.text = EXPOSITION;
    assert_int_equal(gwh_control_send(h, &rep), 0);
    /* the next scrape is answered, whether it came before our late answer
     * (then that answer is its own) or after (then it asks again) */
    int again = s_scrape_send(h);
    for (long long end = gwh_now_ms() + 5000; gwh_now_ms() < end;) {
        struct pollfd p = { .fd = again, .events = POLLIN };
        if (poll(&p, 1, 0) == 1)
            break;
        if (gwh_control_recv(h, SOUK_MSG_METRICS_REQ, 100, &m) == 0) {
            souk_msg_clear(&m);
            assert_int_equal(gwh_control_send(h, &rep), 0);
        }
    }
    assert_int_equal(gwh_http_read(again, 5000, &r), 0);
    assert_int_equal(r.status, 200);
    gwh_resp_clear(&r);
    close(again);
}

/* Answered requests reach the heartbeat's fragment, by route and status. */
static void test_requests_counted_in_heartbeats(void **state)
{
    gwh_t *h = *state;
    gwh_resp_t r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gwh_get(h, "/healthz", &r), 200);
        gwh_resp_clear(&r);
    }
    assert_int_equal(gwh_get(h, "/nope", &r), 404);
    gwh_resp_clear(&r);
    bool seen = false;
    for (long long end = gwh_now_ms() + 5000; !seen && gwh_now_ms() < end;) {
        souk_msg_t m;
        if (gwh_control_recv(h, SOUK_MSG_HEARTBEAT, 1000, &m) != 0)
            continue;
        seen = strstr(m.heartbeat.metrics,
                      "souk_webhook_requests_total{route=\"/healthz\",status=\"200\"} 3\n")
               && strstr(m.heartbeat.metrics,
                         "souk_webhook_requests_total{route=\"other\",status=\"404\"} 1\n");
        souk_msg_clear(&m);
    }
    assert_true(seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scrape_asks_the_supervisor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_scrapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_supervisor_is_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scraper_hangs_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_counted_in_heartbeats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
