/* Test harness for the gateway actor; see gw_harness.h. */
#include "gw_harness.h"

#include "souk/endpoints.h"
#include "souk/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

long long gwh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0
        || getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* The child's environment: ours without SOUK_* and TWILIO_*, then the
 * harness defaults, then `extra`. Later entries win (glibc getenv takes the
 * first match, so duplicates are removed here). */
static char **s_env(gwh_t *h, const char *const *extra)
{
    static char bufs[16][256];
    const char *defaults[16];
    int nd = 0;
    snprintf(bufs[0], sizeof bufs[0], "SOUK_DATA=%s", h->dir);
    snprintf(bufs[1], sizeof bufs[1], "SOUK_PORT=%d", h->port);
    defaults[nd++] = bufs[0];
    defaults[nd++] = bufs[1];
    defaults[nd++] = "SOUK_LISTEN=lo";
    defaults[nd++] = "SOUK_PUBLIC_URL=" GWH_PUBLIC_URL;
    defaults[nd++] = "TWILIO_AUTH_TOKEN=" GWH_TOKEN;
    defaults[nd++] = "SOUK_REPLY_BUDGET_MS=2000";
    defaults[nd++] = "SOUK_HEARTBEAT_MS=200";
    defaults[nd++] = "SOUK_DRAIN_MS=3000";
    defaults[nd++] = "SOUK_LOG_LEVEL=debug";
    size_t n = 0;
    while (environ[n])
        n++;
    size_t nextra = 0;
    while (extra && extra[nextra])
        nextra++;
    char **env = calloc(n + (size_t)nd + nextra + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "SOUK_", 5) != 0 && strncmp(environ[i], "TWILIO_", 7) != 0)
            env[k++] = environ[i];
    for (int i = 0; i < nd; i++) {
        size_t nl = strcspn(defaults[i], "=");
        bool overridden = false;
        for (size_t j = 0; j < nextra; j++)
            if (strncmp(extra[j], defaults[i], nl + 1) == 0)
                overridden = true;
        if (!overridden)
            env[k++] = (char *)defaults[i];
    }
    for (size_t j = 0; j < nextra; j++)
        env[k++] = (char *)extra[j];
    env[k] = NULL;
    return env;
}

int gwh_start(gwh_t *h, const char *const *env)
{
    memset(h, 0, sizeof *h);
    zsys_handler_set(NULL);
    snprintf(h->dir, sizeof h->dir, "/tmp/sgw-XXXXXX");
    if (!mkdtemp(h->dir))
        return -1;
    snprintf(h->run, sizeof h->run, "%s/run", h->dir);
    snprintf(h->log, sizeof h->log, "%s/gateway.log", h->dir);
    mkdir(h->run, 0750);
    h->port = s_free_port();
    char ep[256];
    h->control = zsock_new(ZMQ_ROUTER);
    zsock_set_router_mandatory(h->control, 1);
    zsock_set_linger(h->control, 0);
    souk_endpoint(ep, sizeof ep, h->run, SOUK_EP_CONTROL, 0);
    if (zsock_bind(h->control, "%s", ep) < 0)
        return -1;
    h->sender = zsock_new(ZMQ_PULL);
    zsock_set_linger(h->sender, 0);
    souk_endpoint(ep, sizeof ep, h->run, SOUK_EP_SENDER, 0);
    if (zsock_bind(h->sender, "%s", ep) < 0)
        return -1;

    const char *bin = getenv("SOUK_BIN");
    if (!bin)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, h->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *argv[] = { (char *)bin, "actor", "gateway", "gateway", NULL };
    char **envp = s_env(h, env);
    int rc = posix_spawn(&h->pid, bin, &fa, NULL, argv, envp);
    free(envp);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    souk_msg_t m;
    if (gwh_control_recv(h, SOUK_MSG_READY, 10000, &m) < 0)
        return -1;
    souk_msg_clear(&m);
    return 0;
}

int gwh_wait_exit(gwh_t *h, int sig, int timeout_ms)
{
    if (h->pid <= 0)
        return -1;
    if (sig)
        kill(h->pid, sig);
    /* a pidfd becomes readable when the process exits: no polling loop */
    int pidfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
    struct pollfd p = { .fd = pidfd, .events = POLLIN };
    if (pidfd >= 0) {
        poll(&p, 1, timeout_ms);
        close(pidfd);
    }
    int status;
    if (waitpid(h->pid, &status, WNOHANG) != h->pid) {
        kill(h->pid, SIGKILL);
        waitpid(h->pid, &status, 0);
        h->pid = 0;
        return -1;
    }
    h->pid = 0;
    return status;
}

void gwh_stop(gwh_t *h)
{
    if (h->pid > 0)
        gwh_wait_exit(h, SIGKILL, 5000);
    zsock_destroy(&h->control);
    zsock_destroy(&h->sender);
    if (*h->dir && !getenv("GWH_KEEP")) {
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", h->dir);
    }
}

/* ---- bus ------------------------------------------------------------------- */

static int s_recv(zsock_t *s, bool router, souk_msg_type_t type, int timeout_ms, souk_msg_t *out)
{
    long long end = gwh_now_ms() + timeout_ms;
    for (;;) {
        long long left = end - gwh_now_ms();
        if (left < 0)
            return -1;
        zmq_pollitem_t it = { .socket = zsock_resolve(s), .events = ZMQ_POLLIN };
        if (zmq_poll(&it, 1, (long)left) <= 0)
            continue;
        char id[256];
        size_t idlen = sizeof id;
        char err[128];
        int rc = souk_msg_recv(s, router ? id : NULL, router ? &idlen : NULL, out, ZMQ_DONTWAIT,
                               err, sizeof err);
        if (rc != SOUK_OK) {
            if (rc != SOUK_EBUSY)
                fprintf(stderr, "harness: bad message: %s\n", err);
            continue;
        }
        if (type == SOUK_MSG_NONE || out->type == type)
            return 0;
        souk_msg_clear(out);
    }
}

int gwh_control_recv(gwh_t *h, souk_msg_type_t type, int timeout_ms, souk_msg_t *out)
{
    return s_recv(h->control, true, type, timeout_ms, out);
}

int gwh_control_send(gwh_t *h, const souk_msg_t *m)
{
    return souk_msg_send(h->control, "gateway", 7, m, 0);
}

int gwh_set_ready(gwh_t *h, bool ready)
{
    souk_msg_t m = { .type = SOUK_MSG_READINESS };
    m.readiness.ready = ready;
    m.readiness.detail = ready ? "all ready" : "sender starting";
    if (gwh_control_send(h, &m) != SOUK_OK)
        return -1;
    long long end = gwh_now_ms() + 3000;
    while (gwh_now_ms() < end) {
        gwh_resp_t r;
        int st = gwh_get(h, "/readyz", &r);
        gwh_resp_clear(&r);
        if ((ready && st == 200) || (!ready && st == 503))
            return 0;
    }
    return -1;
}

zsock_t *gwh_session(gwh_t *h, const char *waid, bool hello)
{
    char ep[256];
    souk_endpoint(ep, sizeof ep, h->run, SOUK_EP_SESSIONS, 0);
    zsock_t *s = zsock_new(ZMQ_DEALER);
    zsock_set_identity(s, waid);
    zsock_set_linger(s, 0);
    if (zsock_connect(s, "%s", ep) < 0) {
        zsock_destroy(&s);
        return NULL;
    }
    if (hello) {
        gwh_hello(s, waid);
        /* a barrier: an IDLE naming another user is refused (ok=false) and
         * changes nothing, and its answer means the hello was handled */
        souk_msg_t idle = { .type = SOUK_MSG_IDLE };
        idle.idle.waid = "barrier";
        souk_msg_t ok;
        if (gwh_session_send(s, &idle) != SOUK_OK
            || gwh_session_recv(s, SOUK_MSG_IDLE_OK, 5000, &ok) < 0) {
            zsock_destroy(&s);
            return NULL;
        }
        souk_msg_clear(&ok);
    }
    return s;
}

int gwh_hello(zsock_t *s, const char *waid)
{
    souk_msg_t m = { .type = SOUK_MSG_SESSION_HELLO };
    m.session_hello.waid = (char *)waid;
    m.session_hello.pid = (uint64_t)getpid();
    return gwh_session_send(s, &m);
}

int gwh_session_recv(zsock_t *s, souk_msg_type_t type, int timeout_ms, souk_msg_t *out)
{
    return s_recv(s, false, type, timeout_ms, out);
}

int gwh_session_send(zsock_t *s, const souk_msg_t *m)
{
    return souk_msg_send(s, NULL, 0, m, 0);
}

int gwh_accept(zsock_t *s, const char *sid, bool duplicate)
{
    souk_msg_t m = { .type = SOUK_MSG_ACCEPTED };
    m.accepted.msg_sid = (char *)sid;
    m.accepted.duplicate = duplicate;
    return gwh_session_send(s, &m);
}

int gwh_offer(zsock_t *s, const char *sid, const char *body)
{
    char key[160];
    snprintf(key, sizeof key, "r:%s", sid);
    souk_msg_t m = { .type = SOUK_MSG_REPLY_OFFER };
    m.reply_offer.msg_sid = (char *)sid;
    m.reply_offer.outbox_key = key;
    m.reply_offer.body = (char *)body;
    return gwh_session_send(s, &m);
}

/* ---- HTTP -------------------------------------------------------------------- */

int gwh_http_send(gwh_t *h, const char *raw, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)h->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, raw + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    return fd;
}

void gwh_resp_clear(gwh_resp_t *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

int gwh_http_read(int fd, int timeout_ms, gwh_resp_t *r)
{
    memset(r, 0, sizeof *r);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    long long end = gwh_now_ms() + timeout_ms;
    size_t head = 0, need = 0;
    for (;;) {
        if (head && len >= head + need)
            break;
        long long left = end - gwh_now_ms();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            goto fail;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0)
            goto fail;
        len += (size_t)n;
        buf[len] = '\0';
        if (!head) {
            char *eoh = strstr(buf, "\r\n\r\n");
            if (!eoh)
                continue;
            head = (size_t)(eoh - buf) + 4;
            if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
                goto fail;
            snprintf(r->headers, sizeof r->headers, "%.*s", (int)head, buf);
            const char *cl = strcasestr(r->headers, "\r\ncontent-length:");
            need = cl ? strtoul(cl + 17, NULL, 10) : 0;
        }
    }
    r->body = malloc(need + 1);
    memcpy(r->body, buf + head, need);
    r->body[need] = '\0';
    r->body_len = need;
    free(buf);
    return 0;
fail:
    free(buf);
    return -1;
}

int gwh_http(gwh_t *h, const char *raw, gwh_resp_t *r)
{
    memset(r, 0, sizeof *r);
    int fd = gwh_http_send(h, raw, strlen(raw));
    if (fd < 0)
        return -1;
    int rc = gwh_http_read(fd, 5000, r);
    close(fd);
    return rc < 0 ? -1 : r->status;
}

int gwh_get(gwh_t *h, const char *path, gwh_resp_t *r)
{
    char raw[512];
    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    return gwh_http(h, raw, r);
}

twilio_form_t *gwh_form(const char *sid, const char *waid, const char *body)
{
    char from[64];
    snprintf(from, sizeof from, "whatsapp:+%s", waid);
    twilio_form_t *f = twilio_form_new();
    twilio_form_add(f, "SmsMessageSid", sid);
    twilio_form_add(f, "NumMedia", "0");
    twilio_form_add(f, "ProfileName", "Ana");
    twilio_form_add(f, "MessageType", "text");
    twilio_form_add(f, "SmsSid", sid);
    twilio_form_add(f, "WaId", waid);
    twilio_form_add(f, "SmsStatus", "received");
    twilio_form_add(f, "Body", body);
    twilio_form_add(f, "To", "whatsapp:+14155238886");
    twilio_form_add(f, "NumSegments", "1");
    twilio_form_add(f, "MessageSid", sid);
    twilio_form_add(f, "AccountSid", "AC00000000000000000000000000000000");
    twilio_form_add(f, "From", from);
    twilio_form_add(f, "ApiVersion", "2010-04-01");
    return f;
}

char *gwh_post(const char *path, const twilio_form_t *form, const char *sign_url,
               const char *signature, const char *host, const char *extra, size_t *len)
{
    char *body = NULL;
    if (twilio_form_encode(form, &body) != SOUK_OK)
        return NULL;
    char sig[29] = "";
    if (!signature) {
        char url[1024];
        if (!sign_url) {
            snprintf(url, sizeof url, "%s%s", GWH_PUBLIC_URL, path);
            sign_url = url;
        }
        twilio_signature_compute(GWH_TOKEN, sign_url, form, sig);
        signature = sig;
    }
    char sighdr[128] = "";
    if (*signature)
        snprintf(sighdr, sizeof sighdr, "X-Twilio-Signature: %s\r\n", signature);
    char *raw = NULL;
    int n = asprintf(&raw,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: TwilioProxy/1.1\r\n"
                     "Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n"
                     "Content-Length: %zu\r\n%s%s\r\n%s",
                     path, host ? host : "localhost", strlen(body), sighdr, extra ? extra : "",
                     body);
    free(body);
    if (n < 0)
        return NULL;
    if (len)
        *len = (size_t)n;
    return raw;
}

int gwh_webhook(gwh_t *h, const twilio_form_t *form)
{
    size_t len;
    char *raw = gwh_post("/webhooks/whatsapp", form, NULL, NULL, NULL, NULL, &len);
    if (!raw)
        return -1;
    int fd = gwh_http_send(h, raw, len);
    free(raw);
    return fd;
}
