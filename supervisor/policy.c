/* Restart arithmetic with no side effects, so it can be tested on its own:
 * backoff delays, sliding windows of restart times, what an exit means, and
 * the masking of phone numbers in log lines. */
#include "supervisor.h"

#include "souk/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sup_window_init(sup_window_t *w, int64_t max)
{
    memset(w, 0, sizeof *w);
    w->cap = max + 1;
    w->at = calloc((size_t)w->cap, sizeof *w->at);
    return w->at ? SOUK_OK : SOUK_ENOMEM;
}

void sup_window_clear(sup_window_t *w)
{
    free(w->at);
    memset(w, 0, sizeof *w);
}

int64_t sup_window_count(const sup_window_t *w, int64_t now, int64_t window_ms)
{
    int64_t count = 0;
    for (int64_t i = 0; i < w->n; i++)
        if (now - w->at[i] < window_ms)
            count++;
    return count;
}

int64_t sup_window_add(sup_window_t *w, int64_t now, int64_t window_ms)
{
    w->at[w->head] = now;
    w->head = (w->head + 1) % w->cap;
    if (w->n < w->cap)
        w->n++;
    return sup_window_count(w, now, window_ms);
}

int64_t sup_backoff_next(const sup_tree_t *t, int64_t delay)
{
    if (delay <= 0)
        return t->backoff_base_ms;
    return delay * 2 < t->backoff_cap_ms ? delay * 2 : t->backoff_cap_ms;
}

sup_verdict_t sup_exit_verdict(sup_restart_t restart, int code, int sig, bool stop_requested)
{
    if (!sig && code == SOUK_EXIT_CONFIG && !stop_requested)
        return SUP_EXIT_CONFIG;
    if (stop_requested)
        return SUP_EXIT_FINAL;
    switch (restart) {
    case SUP_PERMANENT: return SUP_EXIT_RESTART;
    case SUP_TRANSIENT: return sig || code ? SUP_EXIT_RESTART : SUP_EXIT_FINAL;
    default: return SUP_EXIT_FINAL;
    }
}

const char *sup_exit_text(int code, int sig, char *out, size_t len)
{
    if (sig)
        snprintf(out, len, "signal %d", sig);
    else
        snprintf(out, len, "exit %d", code);
    return out;
}

const char *sup_mask_waid(const char *waid, char *out, size_t len)
{
    size_t n = strlen(waid);
    if (len == 0)
        return out;
    if (n <= 5) {
        snprintf(out, len, "***");
        return out;
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < len; i++)
        out[o++] = i < 3 || i >= n - 2 ? waid[i] : '*';
    out[o] = '\0';
    return out;
}

const char *sup_mask_name(const char *name, char *out, size_t len)
{
    size_t plen = strlen(SUP_SESSION_PREFIX);
    if (strncmp(name, SUP_SESSION_PREFIX, plen) != 0) {
        snprintf(out, len, "%s", name);
        return out;
    }
    char masked[SOUK_CAP_NAME + 1];
    snprintf(out, len, "%s%s", SUP_SESSION_PREFIX,
             sup_mask_waid(name + plen, masked, sizeof masked));
    return out;
}

bool sup_waid_valid(const char *waid)
{
    size_t n = strlen(waid);
    if (n == 0 || n > 48)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = waid[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}
