/* The echo answer (SOUK_AGENT=echo): a short help text that proves the
 * whole channel path without the shop — it greets the user by profile name,
 * echoes the turn's messages and says what the shop can do. The channel's
 * end-to-end and kill tests use it, because they are about delivery, not
 * about what the agent says. */
#include "session.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The echo stays well inside one WhatsApp message (1,600 characters). */
#define ECHO_MAX_BYTES 400
#define NAME_MAX_BYTES 60
#define HELP_TEXT                                                            \
    "I can help you find products, place an order, check an order's status " \
    "or open a support ticket."

/* Length of the longest prefix of s (len bytes) that is at most max bytes
 * and does not cut a UTF-8 sequence. */
static size_t s_utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Writes the message trimmed of surrounding white space, or a note for an
 * attachment without text, after " / " when it is not the first; returns
 * whether anything was written. */
static bool s_echo_one(FILE *f, const session_msg_t *m, bool first)
{
    const char *b = m->body;
    while (isspace((unsigned char)*b))
        b++;
    size_t n = strlen(b);
    while (n && isspace((unsigned char)b[n - 1]))
        n--;
    if (!n && !m->num_media)
        return false;
    if (!first)
        fputs(" / ", f);
    if (n)
        fwrite(b, 1, n, f);
    else
        fprintf(f, "[%llu attachment%s]", (unsigned long long)m->num_media,
                m->num_media == 1 ? "" : "s");
    return true;
}

char *session_answer_echo(const session_turn_t *turn)
{
    char *echo = NULL, *out = NULL;
    size_t echo_len = 0, out_len = 0;
    FILE *f = open_memstream(&echo, &echo_len);
    if (!f)
        return NULL;
    bool first = true;
    for (size_t i = 0; i < turn->n; i++)
        if (s_echo_one(f, &turn->msgs[i], first))
            first = false;
    if (fclose(f) != 0) {
        free(echo);
        return NULL;
    }

    f = open_memstream(&out, &out_len);
    if (f) {
        const char *name = turn->profile_name && *turn->profile_name ? turn->profile_name : NULL;
        if (name)
            fprintf(f, "Hi %.*s! ", (int)s_utf8_prefix(name, strlen(name), NAME_MAX_BYTES), name);
        else
            fputs("Hi! ", f);
        size_t n = s_utf8_prefix(echo, echo_len, ECHO_MAX_BYTES);
        if (n)
            fprintf(f, "You said: \u201c%.*s%s\u201d. ", (int)n, echo, n < echo_len ? "\u2026" : "");
        fputs(HELP_TEXT, f);
        if (fclose(f) != 0) {
            free(out);
            out = NULL;
        }
    }
    free(echo);
    return out;
}
