/* The sender's HTTP client for Twilio's Messages resource; see twilio_rest.h.
 *
 * curl asks for sockets to be watched (s_on_curl_socket) and for a timeout
 * (s_on_curl_timer); both become zloop pollers and one-shot timers, whose
 * handlers call curl_multi_socket_action and then collect finished transfers.
 * Poll is level-triggered, so a socket curl did not fully drain is simply
 * reported again. */
#include "twilio_rest.h"

#include "souk/actor.h"
#include "souk/curl.h"
#include "souk/error.h"
#include "souk/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONNECT_TIMEOUT_MS 5000L
/* Below the sender's 30 s lease, so a live request never outlasts it. */
#define TOTAL_TIMEOUT_MS 20000L
#define REPLY_MAX_BYTES (1024 * 1024)
#define RETRY_AFTER_MAX_S (7 * 86400)

typedef struct job {
    struct job *prev, *next;
    twilio_rest_t *owner;
    CURL *easy;
    struct curl_slist *headers;
    twilio_rest_fn *fn;
    void *arg;
    char *buf;
    size_t len, cap;
    int64_t retry_after_ms;
    char errbuf[CURL_ERROR_SIZE];
} job_t;

struct twilio_rest {
    zloop_t *loop;
    CURLM *multi;
    int timer_id;            /* curl's timeout as a one-shot zloop timer; -1 none */
    char *messages_url;      /* {base}/2010-04-01/Accounts/{sid}/Messages.json */
    char *account_sid, *auth_token;
    int max_inflight, inflight;
    job_t *jobs;             /* in flight, for destroy */
};

/* ---- jobs ------------------------------------------------------------------ */

static void s_job_free(job_t *job)
{
    if (!job)
        return;
    if (job->easy)
        curl_easy_cleanup(job->easy);
    curl_slist_free_all(job->headers);
    free(job->buf);
    free(job);
}

static size_t s_on_body(char *data, size_t size, size_t n, void *arg)
{
    job_t *job = arg;
    size_t len = size * n;
    if (job->len + len + 1 > REPLY_MAX_BYTES)
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    if (job->len + len + 1 > job->cap) {
        size_t cap = job->cap ? job->cap : 4096;
        while (cap < job->len + len + 1)
            cap *= 2;
        char *buf = realloc(job->buf, cap);
        if (!buf)
            return 0;
        job->buf = buf;
        job->cap = cap;
    }
    memcpy(job->buf + job->len, data, len);
    job->len += len;
    job->buf[job->len] = '\0';
    return len;
}

static size_t s_on_header(char *data, size_t size, size_t n, void *arg)
{
    job_t *job = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        job->retry_after_ms = -1; /* a new response (after a 100 Continue) */
    } else if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        char value[128];
        size_t vlen = len - (sizeof name - 1);
        if (vlen >= sizeof value)
            vlen = sizeof value - 1;
        memcpy(value, data + sizeof name - 1, vlen);
        value[vlen] = '\0';
        job->retry_after_ms = twilio_rest_retry_after_ms(value, souk_wall_ms());
    }
    return len;
}

/* twilio: a request to Twilio's API, with its credentials; else a plain one. */
static job_t *s_job_new(twilio_rest_t *self, const char *url, bool twilio, twilio_rest_fn *fn,
                        void *arg)
{
    job_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->owner = self;
    job->fn = fn;
    job->arg = arg;
    job->retry_after_ms = -1;
    job->easy = curl_easy_init();
    job->headers = curl_slist_append(NULL, "Accept: application/json");
    /* No "Expect: 100-continue" wait on larger bodies. */
    struct curl_slist *more = job->headers ? curl_slist_append(job->headers, "Expect:") : NULL;
    if (!job->easy || !more) {
        s_job_free(job);
        return NULL;
    }
    job->headers = more;
    CURL *e = job->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "souk-sender/" "0.1");
    if (twilio) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, self->account_sid);
        curl_easy_setopt(e, CURLOPT_PASSWORD, self->auth_token);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, job->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, job);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, job);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, job->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, job);
    return job;
}

static int s_job_start(twilio_rest_t *self, job_t *job)
{
    if (curl_multi_add_handle(self->multi, job->easy) != CURLM_OK) {
        s_job_free(job);
        return SOUK_EIO;
    }
    job->next = self->jobs;
    if (self->jobs)
        self->jobs->prev = job;
    self->jobs = job;
    self->inflight++;
    return SOUK_OK;
}

static void s_job_unlink(twilio_rest_t *self, job_t *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        self->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    curl_multi_remove_handle(self->multi, job->easy);
    self->inflight--;
}

static void s_job_finish(twilio_rest_t *self, job_t *job, CURLcode code)
{
    s_job_unlink(self, job);
    long status = 0, request_size = 0;
    curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(job->easy, CURLINFO_REQUEST_SIZE, &request_size);
    twilio_reply_t reply = {
        .curl_code = (int)code,
        /* Without a complete answer, a request whose bytes had left may have
         * been acted on: the caller must not assume either way. */
        .maybe_sent = code != CURLE_OK && request_size > 0,
        .status = code == CURLE_OK ? status : 0,
        .retry_after_ms = job->retry_after_ms,
        .body = job->buf ? job->buf : "",
        .len = job->len,
        .error = code == CURLE_OK ? "" : (*job->errbuf ? job->errbuf : curl_easy_strerror(code)),
    };
    job->fn(&reply, job->arg);
    s_job_free(job);
}

static void s_collect(twilio_rest_t *self)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        job_t *job = NULL;
        CURLcode code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&job);
        if (job)
            s_job_finish(self, job, code);
    }
}

/* ---- curl <-> zloop ----------------------------------------------------- */

static int s_on_socket_ready(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    twilio_rest_t *self = arg;
    int ev = 0, running;
    if (item->revents & ZMQ_POLLIN)
        ev |= CURL_CSELECT_IN;
    if (item->revents & ZMQ_POLLOUT)
        ev |= CURL_CSELECT_OUT;
    if (item->revents & ZMQ_POLLERR)
        ev |= CURL_CSELECT_ERR;
    curl_multi_socket_action(self->multi, item->fd, ev, &running);
    s_collect(self);
    return 0;
}

static int s_on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    twilio_rest_t *self = userp;
    zmq_pollitem_t item = { .socket = NULL, .fd = fd };
    if (socketp)
        zloop_poller_end(self->loop, &item);
    if (what == CURL_POLL_REMOVE) {
        curl_multi_assign(self->multi, fd, NULL);
        return 0;
    }
    item.events = (short)(((what & CURL_POLL_IN) ? ZMQ_POLLIN : 0)
                          | ((what & CURL_POLL_OUT) ? ZMQ_POLLOUT : 0));
    if (zloop_poller(self->loop, &item, s_on_socket_ready, self) < 0) {
        SLOG_ERROR("rest.poller", "fd=%d", (int)fd);
        return -1;
    }
    /* A hang-up is curl's to see, not a reason for zloop to drop the fd. */
    zloop_poller_set_tolerant(self->loop, &item);
    curl_multi_assign(self->multi, fd, self);
    return 0;
}

static int s_on_timeout(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop; (void)timer_id;
    twilio_rest_t *self = arg;
    int running;
    self->timer_id = -1;
    curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    s_collect(self);
    return 0;
}

static int s_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    twilio_rest_t *self = userp;
    if (self->timer_id >= 0)
        zloop_timer_end(self->loop, self->timer_id);
    self->timer_id = -1;
    if (timeout_ms < 0)
        return 0;
    /* At least 1 ms: a 0 ms zloop timer added from a timer handler would
     * fire again in the same pass. */
    size_t delay = timeout_ms < 1 ? 1 : (size_t)timeout_ms;
    self->timer_id = zloop_timer(self->loop, delay, 1, s_on_timeout, self);
    return self->timer_id < 0 ? -1 : 0;
}

/* ---- public -------------------------------------------------------------- */

twilio_rest_t *twilio_rest_new(zloop_t *loop, const char *api_base, const char *account_sid,
                               const char *auth_token, int max_inflight)
{
    twilio_rest_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->timer_id = -1;
    self->max_inflight = max_inflight > 0 ? max_inflight : 1;
    bool plain = !api_base || !account_sid || !auth_token;
    if (!plain) {
        size_t blen = strlen(api_base);
        while (blen > 0 && api_base[blen - 1] == '/')
            blen--;
        char *sid = curl_easy_escape(NULL, account_sid, 0);
        bool ok = sid && asprintf(&self->messages_url, "%.*s/2010-04-01/Accounts/%s/Messages.json",
                                  (int)blen, api_base, sid) >= 0;
        curl_free(sid);
        if (!ok)
            self->messages_url = NULL;
        self->account_sid = strdup(account_sid);
        self->auth_token = strdup(auth_token);
    }
    self->multi = curl_multi_init();
    if ((!plain && (!self->messages_url || !self->account_sid || !self->auth_token)) || !self->multi) {
        SLOG_ERROR("rest.init", "err=ENOMEM");
        twilio_rest_destroy(&self);
        return NULL;
    }
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETFUNCTION, s_on_curl_socket);
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERFUNCTION, s_on_curl_timer);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)self->max_inflight);
    curl_multi_setopt(self->multi, CURLMOPT_MAXCONNECTS, (long)self->max_inflight);
    return self;
}

void twilio_rest_destroy(twilio_rest_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    twilio_rest_t *self = *self_p;
    while (self->jobs) {
        job_t *job = self->jobs;
        s_job_unlink(self, job);
        s_job_free(job);
    }
    if (self->multi)
        curl_multi_cleanup(self->multi); /* closes sockets: REMOVE callbacks end the pollers */
    if (self->timer_id >= 0)
        zloop_timer_end(self->loop, self->timer_id);
    free(self->messages_url);
    free(self->account_sid);
    if (self->auth_token)
        explicit_bzero(self->auth_token, strlen(self->auth_token));
    free(self->auth_token);
    free(self);
    *self_p = NULL;
}

int twilio_rest_inflight(const twilio_rest_t *self)
{
    return self->inflight;
}

int twilio_rest_send(twilio_rest_t *self, const twilio_form_t *form, twilio_rest_fn *fn, void *arg)
{
    if (!self->messages_url)
        return SOUK_EINVAL;
    if (self->inflight >= self->max_inflight)
        return SOUK_EBUSY;
    char *body = NULL;
    int rc = twilio_form_encode(form, &body);
    if (rc != SOUK_OK)
        return rc;
    job_t *job = s_job_new(self, self->messages_url, true, fn, arg);
    if (!job) {
        free(body);
        return SOUK_ENOMEM;
    }
    curl_easy_setopt(job->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(job->easy, CURLOPT_COPYPOSTFIELDS, body);
    free(body);
    return s_job_start(self, job);
}

int twilio_rest_list(twilio_rest_t *self, const char *to, const char *from, int page_size,
                     twilio_rest_fn *fn, void *arg)
{
    if (!self->messages_url)
        return SOUK_EINVAL;
    if (self->inflight >= self->max_inflight)
        return SOUK_EBUSY;
    char *eto = curl_easy_escape(NULL, to, 0);
    char *efrom = curl_easy_escape(NULL, from ? from : "", 0);
    char *url = NULL;
    bool ok = eto && efrom
        && asprintf(&url, "%s?To=%s%s%s&PageSize=%d", self->messages_url, eto,
                    *efrom ? "&From=" : "", efrom, page_size) >= 0;
    curl_free(eto);
    curl_free(efrom);
    if (!ok)
        return SOUK_ENOMEM;
    job_t *job = s_job_new(self, url, true, fn, arg);
    free(url);
    if (!job)
        return SOUK_ENOMEM;
    curl_easy_setopt(job->easy, CURLOPT_HTTPGET, 1L);
    return s_job_start(self, job);
}

int twilio_rest_post_json(twilio_rest_t *self, const char *url, const char *json, const char *key,
                          twilio_rest_fn *fn, void *arg)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return SOUK_EINVAL;
    if (self->inflight >= self->max_inflight)
        return SOUK_EBUSY;
    job_t *job = s_job_new(self, url, false, fn, arg);
    if (!job)
        return SOUK_ENOMEM;
    char *header = NULL;
    struct curl_slist *more = curl_slist_append(job->headers, "Content-Type: application/json");
    if (more && key && asprintf(&header, "Idempotency-Key: %s", key) >= 0)
        more = curl_slist_append(more, header);
    free(header);
    if (!more) {
        s_job_free(job);
        return SOUK_ENOMEM;
    }
    job->headers = more;
    curl_easy_setopt(job->easy, CURLOPT_HTTPHEADER, job->headers);
    curl_easy_setopt(job->easy, CURLOPT_USERAGENT, "souk-webhook/" "0.1");
    curl_easy_setopt(job->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    curl_easy_setopt(job->easy, CURLOPT_COPYPOSTFIELDS, json);
    return s_job_start(self, job);
}

/* ---- parsing ----------------------------------------------------------------- */

static const char *s_str(json_t *obj, const char *name)
{
    const char *s = json_string_value(json_object_get(obj, name));
    return s ? s : "";
}

int twilio_rest_parse_created(const char *body, size_t len, char *sid, size_t sidlen)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *s = json_is_object(root) ? s_str(root, "sid") : "";
    size_t n = strlen(s);
    bool ok = n >= 34 && n < sidlen && (strncmp(s, "SM", 2) == 0 || strncmp(s, "MM", 2) == 0);
    if (ok)
        memcpy(sid, s, n + 1);
    json_decref(root);
    return ok ? SOUK_OK : SOUK_EPROTO;
}

int twilio_rest_parse_error(const char *body, size_t len, int *code, char *message,
                            size_t msglen)
{
    *code = 0;
    if (msglen)
        message[0] = '\0';
    json_t *root = json_loadb(body, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return SOUK_EPROTO;
    }
    json_t *c = json_object_get(root, "code");
    if (json_is_integer(c))
        *code = (int)json_integer_value(c);
    snprintf(message, msglen, "%s", s_str(root, "message"));
    json_decref(root);
    return SOUK_OK;
}

int twilio_rest_parse_list(const char *body, size_t len,
                           int (*cb)(const twilio_listed_t *m, void *arg), void *arg)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *list = json_object_get(root, "messages");
    if (!json_is_array(list)) {
        json_decref(root);
        return SOUK_EPROTO;
    }
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        if (!json_is_object(m))
            continue;
        json_t *code = json_object_get(m, "error_code");
        twilio_listed_t item = {
            .sid = s_str(m, "sid"), .to = s_str(m, "to"), .from = s_str(m, "from"),
            .body = s_str(m, "body"), .status = s_str(m, "status"),
            .error_code = json_is_integer(code) ? (int)json_integer_value(code) : 0,
            .created_ms = twilio_rest_date_ms(s_str(m, "date_created")),
        };
        if (cb(&item, arg))
            break;
    }
    json_decref(root);
    return SOUK_OK;
}

int64_t twilio_rest_retry_after_ms(const char *value, int64_t now_wall_ms)
{
    while (*value == ' ' || *value == '\t')
        value++;
    char v[128];
    snprintf(v, sizeof v, "%s", value);
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        v[--n] = '\0';
    if (n == 0)
        return -1;
    if (strspn(v, "0123456789") == n) {
        int64_t s = n > 7 ? RETRY_AFTER_MAX_S : strtoll(v, NULL, 10);
        return (s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : s) * 1000;
    }
    time_t t = curl_getdate(v, NULL);
    if (t < 0)
        return -1;
    int64_t ms = (int64_t)t * 1000 - now_wall_ms;
    return ms < 0 ? 0 : ms > RETRY_AFTER_MAX_S * 1000 ? RETRY_AFTER_MAX_S * 1000 : ms;
}

int64_t twilio_rest_date_ms(const char *rfc2822)
{
    if (!rfc2822 || !*rfc2822)
        return -1;
    time_t t = curl_getdate(rfc2822, NULL);
    return t < 0 ? -1 : (int64_t)t * 1000;
}
