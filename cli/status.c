/* `souk status [--json]`: asks the supervisor for its status document over
 * the control endpoint and prints it as a table, or as the JSON object
 * itself ({"actors":[{name, role, pid, state, restarts, uptime_s, rss_kb,
 * last_exit, ...}], "ready":..., "sessions_live":...}).
 * Exits 3 (the LSB "not running") when no supervisor answers. */
#include "cli.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/proto.h"

#include <czmq.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EXIT_NOT_RUNNING 3
#define ANSWER_TIMEOUT_MS 5000

/* Whether something listens on the ipc endpoint: a stale socket file left
 * by a killed supervisor refuses the connection at once. */
bool cli_endpoint_alive(const char *endpoint)
{
    const char *path = endpoint + strlen("ipc://");
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof addr.sun_path)
        return false;
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool alive = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return alive;
}

/* Sends STATUS_REQ and waits for the document; NULL (with a message on
 * stderr) when souk is not running. Caller frees. */
static char *s_request(const souk_config_t *cfg)
{
    char ep[512];
    souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_CONTROL, 0);
    if (!cli_endpoint_alive(ep)) {
        fprintf(stderr, "souk is not running (nothing listens on %s)\n", ep);
        return NULL;
    }
    zsys_handler_set(NULL);
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_linger(sock, 0);
    zsock_set_rcvtimeo(sock, ANSWER_TIMEOUT_MS);
    zsock_set_sndtimeo(sock, ANSWER_TIMEOUT_MS);
    char *json = NULL;
    souk_msg_t req = { .type = SOUK_MSG_STATUS_REQ }, rep;
    req.status_req.ts = 0;
    char err[128];
    if (zsock_connect(sock, "%s", ep) == 0 && souk_msg_send(sock, NULL, 0, &req, 0) == SOUK_OK
        && souk_msg_recv(sock, NULL, NULL, &rep, 0, err, sizeof err) == SOUK_OK) {
        if (rep.type == SOUK_MSG_STATUS_REP)
            json = strdup(rep.status_rep.json);
        souk_msg_clear(&rep);
    }
    zsock_destroy(&sock);
    if (!json)
        fprintf(stderr, "souk is not running (no answer on %s)\n", ep);
    return json;
}

static void s_cell(char *out, size_t len, json_t *v)
{
    if (json_is_string(v))
        snprintf(out, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
    else
        snprintf(out, len, "-");
}

static void s_print_table(json_t *doc)
{
    printf("souk pid %lld, %s, %s, %lld session(s) live\n",
           (long long)json_integer_value(json_object_get(doc, "pid")),
           json_string_value(json_object_get(doc, "phase")),
           json_is_true(json_object_get(doc, "ready")) ? "ready" : "not ready",
           (long long)json_integer_value(json_object_get(doc, "sessions_live")));
    static const char *const cols[] = { "name", "role", "pid", "state", "uptime_s",
                                        "restarts", "last_exit", "rss_kb", "handled" };
    static const int widths[] = { -24, -8, 8, -9, 9, 9, -11, 8, 9 };
    const size_t ncols = sizeof cols / sizeof cols[0];
    for (size_t i = 0; i < ncols; i++)
        printf("%*s%s", widths[i], cols[i], i + 1 < ncols ? " " : "\n");
    size_t idx;
    json_t *row;
    json_array_foreach(json_object_get(doc, "actors"), idx, row) {
        for (size_t i = 0; i < ncols; i++) {
            char cell[80];
            s_cell(cell, sizeof cell, json_object_get(row, cols[i]));
            printf("%*s%s", widths[i], cell, i + 1 < ncols ? " " : "\n");
        }
    }
    json_int_t omitted = json_integer_value(json_object_get(doc, "sessions_omitted"));
    if (omitted)
        printf("(%lld more sessions not listed)\n", (long long)omitted);
}

int cli_status(souk_config_t *cfg, int argc, char **argv)
{
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else {
            fprintf(stderr, "usage: souk status [--json]\n");
            return 2;
        }
    }
    char *text = s_request(cfg);
    if (!text)
        return EXIT_NOT_RUNNING;
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    int rc = 0;
    if (!doc) {
        fprintf(stderr, "souk status: malformed answer: %s\n", jerr.text);
        rc = 1;
    } else if (as_json) {
        printf("%s\n", text);
    } else {
        s_print_table(doc);
    }
    json_decref(doc);
    free(text);
    return rc;
}
