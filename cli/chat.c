/* `souk chat`: a terminal WhatsApp simulator.
 *
 * Each line typed becomes a webhook signed exactly as Twilio signs it (with
 * TWILIO_AUTH_TOKEN or the development token in the data folder), POSTed to
 * the local gateway. The inline TwiML answer is printed at once; answers that
 * go out later through the sender (console mode) arrive on the events stream
 * as "outbound" events and are printed as they come. At end of input it waits
 * for answers still owed (up to --wait-ms). */
#include "cli.h"
#include "souk/curl.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/proto.h"
#include "souk/twilio.h"

#include <czmq.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *from;   /* +15551234567 */
    const char *name;
    char waid[32];
    char wa_from[48];
    const char *to;
    char url[512];       /* where we POST (loopback) */
    char signed_url[512]; /* what Twilio would have been configured with */
    const char *token;
    zsock_t *events;
    int owed;            /* answers acknowledged but not yet seen */
    long wait_ms;
} chat_t;

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

static void s_new_sid(char out[35])
{
    unsigned char raw[16];
    if (getrandom(raw, sizeof raw, 0) != sizeof raw)
        memset(raw, 0x5a, sizeof raw);
    strcpy(out, "SM");
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 + 2 * i, "%02x", raw[i]);
}

/* Unescapes the XML entities TwiML uses, in place. */
static void s_xml_unescape(char *s)
{
    static const struct { const char *ent; char c; } map[] = {
        { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
    };
    char *w = s;
    for (char *r = s; *r;) {
        bool done = false;
        for (size_t i = 0; i < sizeof map / sizeof map[0] && !done; i++) {
            size_t n = strlen(map[i].ent);
            if (strncmp(r, map[i].ent, n) == 0) {
                *w++ = map[i].c;
                r += n;
                done = true;
            }
        }
        if (!done)
            *w++ = *r++;
    }
    *w = '\0';
}

/* Prints every <Message> of a TwiML answer; returns how many. */
static int s_print_twiml(const char *xml)
{
    int n = 0;
    for (const char *p = strstr(xml, "<Message>"); p; p = strstr(p, "<Message>")) {
        p += strlen("<Message>");
        const char *end = strstr(p, "</Message>");
        if (!end)
            break;
        char *text = strndup(p, (size_t)(end - p));
        s_xml_unescape(text);
        printf("shop> %s\n", text);
        free(text);
        n++;
        p = end;
    }
    fflush(stdout);
    return n;
}

/* The gateway says how the answer travels in X-Souk-Answer: inline (this
 * response carries it), later (an acknowledgement now, the answer through
 * the sender) or none (a duplicate, or merged into a later message's turn). */
static size_t s_header(char *p, size_t size, size_t n, void *arg)
{
    bool *later = arg;
    static const char name[] = "x-souk-answer:";
    size_t len = size * n;
    if (len > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0
        && strstr(p + sizeof name - 1, "later"))
        *later = true;
    return len;
}

static int s_post(chat_t *self, const char *text)
{
    char sid[35];
    s_new_sid(sid);
    twilio_form_t *form = twilio_form_new();
    twilio_form_add(form, "MessageSid", sid);
    twilio_form_add(form, "SmsMessageSid", sid);
    twilio_form_add(form, "SmsSid", sid);
    twilio_form_add(form, "AccountSid", "AC00000000000000000000000000000000");
    twilio_form_add(form, "From", self->wa_from);
    twilio_form_add(form, "To", self->to);
    twilio_form_add(form, "Body", text);
    twilio_form_add(form, "NumMedia", "0");
    twilio_form_add(form, "NumSegments", "1");
    twilio_form_add(form, "ProfileName", self->name);
    twilio_form_add(form, "WaId", self->waid);
    twilio_form_add(form, "MessageType", "text");
    twilio_form_add(form, "SmsStatus", "received");
    twilio_form_add(form, "ApiVersion", "2010-04-01");
    char sig[64];
    char *body = NULL;
    if (twilio_signature_compute(self->token, self->signed_url, form, sig) != SOUK_OK
        || twilio_form_encode(form, &body) != SOUK_OK) {
        twilio_form_free(&form);
        fprintf(stderr, "souk chat: cannot build the request\n");
        return -1;
    }
    twilio_form_free(&form);

    CURL *curl = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char sighdr[128];
    snprintf(sighdr, sizeof sighdr, "X-Twilio-Signature: %s", sig);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded");
    hdrs = curl_slist_append(hdrs, sighdr);
    buf_t reply = { 0 };
    bool later = false;
    curl_easy_setopt(curl, CURLOPT_URL, self->url);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &later);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    free(body);
    int ret = 0;
    if (rc != CURLE_OK) {
        fprintf(stderr, "souk chat: %s: %s (is `souk serve` running?)\n", self->url,
                curl_easy_strerror(rc));
        ret = -1;
    } else if (status != 200) {
        fprintf(stderr, "souk chat: HTTP %ld: %s\n", status, reply.data ? reply.data : "");
        ret = -1;
    } else {
        if (later)
            self->owed++;
        s_print_twiml(reply.data ? reply.data : "");
    }
    free(reply.data);
    return ret;
}

/* Prints an "outbound" event addressed to our user. */
static void s_take_event(chat_t *self)
{
    souk_msg_t m;
    if (souk_msg_recv(self->events, NULL, NULL, &m, ZMQ_DONTWAIT, NULL, 0) != SOUK_OK)
        return;
    if (m.type == SOUK_MSG_EVENT && strcmp(m.event.kind, "outbound") == 0) {
        json_t *d = json_loads(m.event.detail, 0, NULL);
        const char *waid = json_string_value(json_object_get(d, "waid"));
        const char *body = json_string_value(json_object_get(d, "body"));
        if (waid && body && strcmp(waid, self->waid) == 0) {
            printf("shop> %s\n", body);
            fflush(stdout);
            if (self->owed > 0)
                self->owed--;
        }
        json_decref(d);
    }
    souk_msg_clear(&m);
}

static int s_loop(chat_t *self)
{
    bool tty = isatty(STDIN_FILENO);
    bool eof = false;
    int64_t deadline = 0;
    char line[2048];
    if (tty)
        printf("Chatting as %s (%s). Type a message; Ctrl-D to quit.\n", self->name, self->from);
    for (;;) {
        struct pollfd fds[2];
        size_t fdlen = sizeof fds[0].fd;
        int evfd;
        zmq_getsockopt(zsock_resolve(self->events), ZMQ_FD, &evfd, &fdlen);
        fds[0] = (struct pollfd){ .fd = evfd, .events = POLLIN };
        fds[1] = (struct pollfd){ .fd = eof ? -1 : STDIN_FILENO, .events = POLLIN };
        while (zsock_events(self->events) & ZMQ_POLLIN)
            s_take_event(self);
        if (eof && (self->owed <= 0 || zclock_mono() >= deadline))
            break;
        int timeout = eof ? (int)(deadline - zclock_mono()) : -1;
        if (poll(fds, 2, timeout < 0 ? -1 : timeout) < 0)
            break;
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            if (!fgets(line, sizeof line, stdin)) {
                eof = true;
                deadline = zclock_mono() + self->wait_ms;
                continue;
            }
            line[strcspn(line, "\r\n")] = '\0';
            if (*line && s_post(self, line) < 0 && !tty)
                return 1;
        }
    }
    if (self->owed > 0)
        fprintf(stderr, "souk chat: %d answer(s) did not arrive within %ld ms\n", self->owed,
                self->wait_ms);
    return self->owed > 0 ? 1 : 0;
}

int cli_chat(souk_config_t *cfg, int argc, char **argv)
{
    chat_t self = { .from = "+15551234567", .name = "Ana", .to = "whatsapp:+14155238886",
                    .wait_ms = cfg->reply_budget_ms + 30000 };
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            self.from = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            self.name = argv[++i];
        else if (strcmp(argv[i], "--wait-ms") == 0 && i + 1 < argc)
            self.wait_ms = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: souk chat [--from +15551234567] [--name Ana] [--wait-ms N]\n");
            return 2;
        }
    }
    const char *digits = self.from[0] == '+' ? self.from + 1 : self.from;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 20) {
        fprintf(stderr, "souk chat: --from must be a phone number like +15551234567\n");
        return 2;
    }
    snprintf(self.waid, sizeof self.waid, "%s", digits);
    snprintf(self.wa_from, sizeof self.wa_from, "whatsapp:+%s", digits);
    char err[256];
    if (souk_curl_load(err, sizeof err) != SOUK_OK || twilio_crypto_load(err, sizeof err) != SOUK_OK) {
        fprintf(stderr, "souk chat: cannot load a library: %s\n", err);
        return 1;
    }
    if (souk_config_prepare_data(cfg, err, sizeof err) != SOUK_OK) {
        fprintf(stderr, "souk chat: %s\n", err);
        return SOUK_EXIT_CONFIG;
    }
    self.token = cfg->twilio_auth_token;
    snprintf(self.url, sizeof self.url, "http://127.0.0.1:%lld/webhooks/whatsapp",
             (long long)cfg->port);
    snprintf(self.signed_url, sizeof self.signed_url, "%s/webhooks/whatsapp", cfg->public_url);

    zsys_handler_set(NULL);
    char ep[512];
    souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_EVENTS, 0);
    self.events = zsock_new_sub(ep, "");
    if (!self.events) {
        fprintf(stderr, "souk chat: cannot reach %s\n", ep);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = s_loop(&self);
    zsock_destroy(&self.events);
    curl_global_cleanup();
    return rc;
}
