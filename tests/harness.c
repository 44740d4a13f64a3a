/* End-to-end test harness; see harness.h. */
#include "harness.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/twilio.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <poll.h>
#include <unistd.h>

const char *harness_bin(void)
{
    const char *bin = getenv("SOUK_BIN");
    return bin ? bin : "build/souk";
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0
        || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void s_print_log_tail(const harness_t *h)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tail -n 40 %s >&2", h->log_path);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log)\n");
}

typedef struct {
    char *data;
    size_t len;
} buf_t;

static size_t s_collect(char *p, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    size_t add = size * n;
    char *grown = realloc(b->data, b->len + add + 1);
    if (!grown)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

static size_t s_header(char *p, size_t size, size_t n, void *arg)
{
    harness_reply_t *r = arg;
    size_t len = size * n;
    static const char name[] = "x-souk-answer:";
    if (len > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0) {
        const char *v = p + sizeof name - 1;
        while (*v == ' ')
            v++;
        size_t k = 0;
        while (k + 1 < sizeof r->answer && v + k < p + len && v[k] != '\r' && v[k] != '\n') {
            r->answer[k] = v[k];
            k++;
        }
        r->answer[k] = '\0';
    }
    return len;
}

static void s_unescape(char *s)
{
    static const struct { const char *ent; char c; } map[] = {
        { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
    };
    char *w = s;
    for (char *r = s; *r;) {
        size_t i = 0;
        for (; i < sizeof map / sizeof map[0]; i++) {
            size_t n = strlen(map[i].ent);
            if (strncmp(r, map[i].ent, n) == 0) {
                *w++ = map[i].c;
                r += n;
                break;
            }
        }
        if (i == sizeof map / sizeof map[0])
            *w++ = *r++;
    }
    *w = '\0';
}

static long s_http(const char *url, const char *method, const char *content_type,
                   const char *body, const char *signature, harness_reply_t *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char line[256];
    if (content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (signature) {
        snprintf(line, sizeof line, "X-Twilio-Signature: %s", signature);
        hdrs = curl_slist_append(hdrs, line);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    buf_t b = { 0 };
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    out->body = b.data ? b.data : strdup("");
    const char *m = strstr(out->body, "<Message>");
    if (m) {
        m += strlen("<Message>");
        const char *end = strstr(m, "</Message>");
        if (end) {
            out->message = strndup(m, (size_t)(end - m));
            s_unescape(out->message);
        }
    }
    return out->status;
}

void harness_reply_clear(harness_reply_t *r)
{
    free(r->body);
    free(r->message);
    memset(r, 0, sizeof *r);
}

int harness_prepare(harness_t *h)
{
    memset(h, 0, sizeof *h);
    snprintf(h->data, sizeof h->data, "/tmp/sk-XXXXXX");
    if (!mkdtemp(h->data))
        return -1;
    snprintf(h->run, sizeof h->run, "%s/run", h->data);
    snprintf(h->log_path, sizeof h->log_path, "%s/serve.log", h->data);
    return 0;
}

int harness_start(harness_t *h, const char *const *env)
{
    if (harness_prepare(h) != 0)
        return -1;
    return harness_start_prepared(h, env);
}

int harness_start_prepared(harness_t *h, const char *const *env)
{
    h->port = s_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", h->port);

    h->pid = fork();
    if (h->pid < 0)
        return -1;
    if (h->pid == 0) {
        int fd = open(h->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        setenv("SOUK_DATA", h->data, 1);
        setenv("SOUK_PORT", port, 1);
        setenv("SOUK_LISTEN", "lo", 1);
        setenv("SOUK_PUBLIC_URL", HARNESS_PUBLIC_URL, 1);
        setenv("TWILIO_AUTH_TOKEN", HARNESS_TOKEN, 1);
        unsetenv("TWILIO_ACCOUNT_SID");
        /* the channel's tests are about delivery: the echo answer; shop
         * conversations pass SOUK_AGENT=builtin */
        setenv("SOUK_AGENT", "echo", 1);
        /* never a cloud model because the developer's shell has a key:
         * the LLM tests pass SOUK_LLM=openai and the fake's URL */
        setenv("SOUK_LLM", "builtin", 1);
        unsetenv("OPENAI_API_KEY");
        setenv("SOUK_EMBEDDER", "local", 1);
        for (const char *const *e = env; e && *e; e++) {
            char *kv = strdup(*e);
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = '\0';
                setenv(kv, eq + 1, 1);
            }
        }
        execl(harness_bin(), "souk", "serve", (char *)NULL);
        _exit(127);
    }
    char ep[256];
    souk_endpoint(ep, sizeof ep, h->run, SOUK_EP_EVENTS, 0);
    zsys_handler_set(NULL);
    h->events = zsock_new_sub(ep, "");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", h->port);
    for (int i = 0; i < 400; i++) {
        harness_reply_t r;
        long st = s_http(url, "GET", NULL, NULL, NULL, &r);
        harness_reply_clear(&r);
        if (st == 200)
            return 0;
        int status;
        if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
            h->pid = 0;
            break;
        }
        usleep(20 * 1000); /* /readyz is the contract under test: poll it like an orchestrator */
    }
    fprintf(stderr, "harness: souk serve did not become ready\n");
    s_print_log_tail(h);
    return -1;
}

int harness_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    /* a pidfd becomes readable when the process exits: no polling */
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -1;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int ready = poll(&p, 1, timeout_ms);
    close(fd);
    if (ready != 1)
        return -1;
    return waitpid(pid, status, 0) == pid ? 0 : -1;
}

int harness_stop(harness_t *h, bool keep)
{
    int code = -1;
    zsock_destroy(&h->events);
    if (h->pid > 0) {
        kill(h->pid, SIGTERM);
        int status;
        if (harness_wait_exit(h->pid, 20000, &status) == 0) {
            h->exit_status = status;
            code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        if (code == -1) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, NULL, 0);
            s_print_log_tail(h);
        }
        h->pid = 0;
    }
    if (!keep && getenv("HARNESS_KEEP") == NULL) {
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf %s", h->data);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", h->data);
    }
    return code;
}

int harness_sign(const char *path, const char *form_body, char out[64])
{
    twilio_form_t *form = NULL;
    if (twilio_form_parse(form_body, strlen(form_body), &form) != SOUK_OK)
        return -1;
    char url[256];
    snprintf(url, sizeof url, "%s%s", HARNESS_PUBLIC_URL, path);
    int rc = twilio_signature_compute(HARNESS_TOKEN, url, form, out);
    twilio_form_free(&form);
    return rc == SOUK_OK ? 0 : -1;
}

int harness_post_raw(harness_t *h, const char *path, const char *content_type, const char *body,
                     const char *signature, harness_reply_t *out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", h->port, path);
    return s_http(url, "POST", content_type, body, signature, out) > 0 ? 0 : -1;
}

int harness_send(harness_t *h, const char *waid, const char *name, const char *text,
                 const char *sid, char sid_out[35], harness_reply_t *out)
{
    char fresh[35];
    if (!sid) {
        unsigned char raw[16];
        if (getrandom(raw, sizeof raw, 0) != sizeof raw)
            return -1;
        strcpy(fresh, "SM");
        for (int i = 0; i < 16; i++)
            sprintf(fresh + 2 + 2 * i, "%02x", raw[i]);
        sid = fresh;
    }
    if (sid_out)
        snprintf(sid_out, 35, "%s", sid);
    char from[48];
    snprintf(from, sizeof from, "whatsapp:+%s", waid);
    twilio_form_t *form = twilio_form_new();
    twilio_form_add(form, "MessageSid", sid);
    twilio_form_add(form, "SmsMessageSid", sid);
    twilio_form_add(form, "AccountSid", "AC00000000000000000000000000000000");
    twilio_form_add(form, "From", from);
    twilio_form_add(form, "To", "whatsapp:+14155238886");
    twilio_form_add(form, "Body", text);
    twilio_form_add(form, "NumMedia", "0");
    twilio_form_add(form, "ProfileName", name);
    twilio_form_add(form, "WaId", waid);
    char *body = NULL;
    twilio_form_encode(form, &body);
    twilio_form_free(&form);
    char sig[64];
    int rc = harness_sign("/webhooks/whatsapp", body, sig);
    if (rc == 0)
        rc = harness_post_raw(h, "/webhooks/whatsapp", "application/x-www-form-urlencoded", body,
                              sig, out);
    free(body);
    return rc;
}

int harness_wait_event(harness_t *h, const char *kind, const char *name_prefix, int timeout_ms,
                       souk_msg_t *out)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    zpoller_t *poller = zpoller_new(h->events, NULL);
    int rc = -1;
    while (rc != 0) {
        int64_t left = deadline - zclock_mono();
        if (left <= 0 || !zpoller_wait(poller, (int)left))
            break;
        souk_msg_t m;
        if (souk_msg_recv(h->events, NULL, NULL, &m, ZMQ_DONTWAIT, NULL, 0) != SOUK_OK)
            continue;
        if (m.type == SOUK_MSG_EVENT && strcmp(m.event.kind, kind) == 0
            && (!name_prefix || strncmp(m.event.name, name_prefix, strlen(name_prefix)) == 0)) {
            *out = m;
            rc = 0;
        } else {
            souk_msg_clear(&m);
        }
    }
    zpoller_destroy(&poller);
    return rc;
}

int harness_wait_outbound(harness_t *h, const char *waid, int timeout_ms, char **body)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t left = deadline - zclock_mono();
        souk_msg_t m;
        if (left <= 0 || harness_wait_event(h, "outbound", NULL, (int)left, &m) != 0)
            return -1;
        json_t *d = json_loads(m.event.detail, 0, NULL);
        const char *w = json_string_value(json_object_get(d, "waid"));
        const char *b = json_string_value(json_object_get(d, "body"));
        bool mine = w && b && strcmp(w, waid) == 0;
        if (mine)
            *body = strdup(b);
        json_decref(d);
        souk_msg_clear(&m);
        if (mine)
            return 0;
    }
}

json_t *harness_status(harness_t *h)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "SOUK_DATA=%s %s status --json 2>/dev/null", h->data, harness_bin());
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    json_t *doc = json_loadf(p, 0, NULL);
    pclose(p);
    return doc;
}

pid_t harness_actor_pid(harness_t *h, const char *name)
{
    json_t *doc = harness_status(h);
    pid_t pid = 0;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(doc, "actors"), i, a) {
        const char *n = json_string_value(json_object_get(a, "name"));
        if (n && strcmp(n, name) == 0)
            pid = (pid_t)json_integer_value(json_object_get(a, "pid"));
    }
    json_decref(doc);
    return pid;
}

int harness_cli(harness_t *h, const char *args, char **out)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "SOUK_DATA=%s %s %s 2>>%s/cli.log", h->data, harness_bin(), args,
             h->data);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    buf_t b = { 0 };
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        if (s_collect(chunk, 1, n, &b) != n)
            break;
    int status = pclose(p);
    if (out)
        *out = b.data ? b.data : strdup("");
    else
        free(b.data);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

json_t *harness_cli_json(harness_t *h, const char *args)
{
    char *text = NULL;
    json_t *doc = NULL;
    if (harness_cli(h, args, &text) == 0)
        doc = json_loads(text, 0, NULL);
    free(text);
    return doc;
}

int harness_events_join(harness_t *h, int timeout_ms)
{
    char ep[256], mon_ep[64];
    souk_endpoint(ep, sizeof ep, h->run, SOUK_EP_EVENTS, 0);
    static int joins; /* one monitor endpoint name per join */
    snprintf(mon_ep, sizeof mon_ep, "inproc://harness-events-%d-%d", (int)getpid(), ++joins);
    zsock_t *sub = zsock_new(ZMQ_SUB);
    if (!sub)
        return -1;
    zsock_set_subscribe(sub, "");
    zsock_t *mon = NULL;
    int rc = zmq_socket_monitor(zsock_resolve(sub), mon_ep, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    if (rc == 0)
        mon = zsock_new_pair(mon_ep);
    if (mon && zsock_connect(sub, "%s", ep) == 0) {
        /* the monitor's message: [event u16, value u32][endpoint] */
        zsock_set_rcvtimeo(mon, timeout_ms);
        zmsg_t *msg = zmsg_recv(mon);
        zframe_t *f = msg ? zmsg_first(msg) : NULL;
        uint16_t event = 0;
        if (f && zframe_size(f) >= 2)
            memcpy(&event, zframe_data(f), sizeof event);
        zmsg_destroy(&msg);
        rc = event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? 0 : -1;
    } else {
        rc = -1;
    }
    zmq_socket_monitor(zsock_resolve(sub), NULL, 0);
    zsock_destroy(&mon);
    if (rc == 0) {
        zsock_destroy(&h->events);
        h->events = sub;
    } else {
        zsock_destroy(&sub);
    }
    return rc;
}

/* ---- GET and metrics ----------------------------------------------------- */

typedef struct {
    char *data;
    size_t len;
} s_buf_t;

static size_t s_collect_buf(void *p, size_t size, size_t n, void *arg)
{
    s_buf_t *b = arg;
    char *d = realloc(b->data, b->len + size * n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, size * n);
    b->data = d;
    b->len += size * n;
    d[b->len] = '\0';
    return size * n;
}

long harness_get(harness_t *h, const char *path, char **body, char **ctype)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", h->port, path);
    CURL *c = curl_easy_init();
    s_buf_t b = { 0 };
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect_buf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (ctype) {
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        *ctype = strdup(ct ? ct : "");
    }
    curl_easy_cleanup(c);
    *body = b.data ? b.data : strdup("");
    return status;
}

double harness_metric_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

double harness_metric(harness_t *h, const char *series)
{
    char *body = NULL;
    double v = harness_get(h, "/metrics", &body, NULL) == 200 ? harness_metric_value(body, series) : -1;
    free(body);
    return v;
}

double harness_metric_await(harness_t *h, const char *series, double want, int timeout_ms)
{
    double v = -1;
    for (int64_t end = zclock_mono() + timeout_ms; zclock_mono() < end;) {
        v = harness_metric(h, series);
        if (v >= want)
            return v;
        zclock_sleep(20); /* a scrape is the event source here: pace it */
    }
    fprintf(stderr, "%s stayed at %g (wanted %g)\n", series, v, want);
    return v;
}
