/* One line per event on stderr; see include/souk/log.h. The line is built in
 * a stack buffer and written with one write(2), so lines from the many actor
 * processes sharing stderr never interleave. */
#include "souk/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

static char s_actor[64] = "souk";
static bool s_json;
static souk_log_level_t s_min = SOUK_LOG_INFO;
static char s_request[96];

static const char *const s_level_names[] = { "debug", "info", "warn", "error" };

void souk_log_init(const char *actor, const char *format, const char *level)
{
    if (actor)
        snprintf(s_actor, sizeof s_actor, "%s", actor);
    if (format)
        s_json = strcmp(format, "json") == 0;
    for (int i = 0; level && i < 4; i++)
        if (strcmp(level, s_level_names[i]) == 0)
            s_min = (souk_log_level_t)i;
}

void souk_log_request(const char *request_id)
{
    snprintf(s_request, sizeof s_request, "%s", request_id ? request_id : "");
}

const char *souk_log_current_request(void)
{
    return s_request;
}

const char *souk_log_quote(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen < 3) {
        if (outlen)
            out[0] = '\0';
        return out;
    }
    out[o++] = '"';
    for (const char *p = in ? in : ""; *p && o + 3 < outlen; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            continue;
        if (c == '"' || c == '\\')
            out[o++] = '\\';
        out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* Appends `s` to buf as a JSON string body (without quotes). */
static size_t json_escape(char *buf, size_t off, size_t cap, const char *s, size_t n)
{
    for (size_t i = 0; i < n && off + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[off++] = '\\';
            buf[off++] = (char)c;
        } else if (c < 0x20) {
            off += (size_t)snprintf(buf + off, cap - off, "\\u%04x", c);
        } else {
            buf[off++] = (char)c;
        }
    }
    return off;
}

/* Converts logfmt pairs to JSON members: k=v and k="v with \"quotes\"". */
static size_t pairs_to_json(char *buf, size_t off, size_t cap, const char *pairs)
{
    const char *p = pairs;
    while (*p && off + 8 < cap) {
        while (*p == ' ')
            p++;
        const char *eq = strchr(p, '=');
        if (!eq)
            break;
        const char *key = p;
        size_t klen = (size_t)(eq - p);
        p = eq + 1;
        char val[LINE_MAX_BYTES];
        size_t vlen = 0;
        if (*p == '"') {
            for (p++; *p && *p != '"' && vlen + 1 < sizeof val; p++) {
                if (*p == '\\' && p[1])
                    p++;
                val[vlen++] = *p;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ' ' && vlen + 1 < sizeof val)
                val[vlen++] = *p++;
        }
        buf[off++] = ',';
        buf[off++] = '"';
        off = json_escape(buf, off, cap, key, klen);
        off += (size_t)snprintf(buf + off, cap - off, "\":\"");
        if (off >= cap)
            return cap - 1;
        off = json_escape(buf, off, cap, val, vlen);
        buf[off++] = '"';
    }
    return off;
}

void souk_log(souk_log_level_t level, const char *event, const char *fmt, ...)
{
    if (level < s_min)
        return;
    char pairs[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pairs, sizeof pairs, fmt ? fmt : "", ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000);

    char line[LINE_MAX_BYTES * 2];
    size_t off;
    if (s_json) {
        off = (size_t)snprintf(line, sizeof line,
                               "{\"ts\":\"%s\",\"level\":\"%s\",\"actor\":\"%s\",\"event\":\"%s\"",
                               when, s_level_names[level], s_actor, event);
        if (*s_request)
            off += (size_t)snprintf(line + off, sizeof line - off, ",\"req\":\"%s\"", s_request);
        off = pairs_to_json(line, off, sizeof line - 4, pairs);
        off += (size_t)snprintf(line + off, sizeof line - off, "}\n");
    } else {
        off = (size_t)snprintf(line, sizeof line, "ts=%s level=%s actor=%s event=%s%s%s%s%s\n",
                               when, s_level_names[level], s_actor, event,
                               *s_request ? " req=" : "", s_request, *pairs ? " " : "", pairs);
    }
    if (off >= sizeof line) {
        off = sizeof line - 1;
        line[off - 1] = s_json ? '}' : '\n';
        if (s_json)
            line[off++ - 0] = '\n';
    }
    ssize_t unused = write(STDERR_FILENO, line, off);
    (void)unused;
}
