/* The systemd notify protocol, written out: one datagram of NAME=value lines
 * to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an abstract
 * name spelt with a leading '@'). No libsystemd: it is this file. */
#include "supervisor.h"

#include "souk/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* WATCHDOG_USEC applies to us only when WATCHDOG_PID is unset or ours. */
static int64_t s_watchdog_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    if (!usec || (pid && atol(pid) != (long)getpid()))
        return 0;
    long long us = atoll(usec);
    if (us <= 0)
        return 0;
    int64_t half = us / 2000;
    return half > 0 ? half : 1;
}

void sup_notify_init(sup_notify_t *n)
{
    memset(n, 0, sizeof *n);
    n->fd = -1;
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len = path ? strlen(path) : 0;
    if (len >= 2 && len < sizeof n->addr.sun_path && (path[0] == '/' || path[0] == '@')) {
        n->addr.sun_family = AF_UNIX;
        memcpy(n->addr.sun_path, path, len);
        if (path[0] == '@')
            n->addr.sun_path[0] = '\0'; /* abstract namespace: not NUL-terminated */
        n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (n->fd < 0)
            SLOG_WARN("notify.socket", "err=\"%s\"", strerror(errno));
        else
            n->watchdog_ms = s_watchdog_ms();
    } else if (path) {
        SLOG_WARN("notify.bad_socket", "NOTIFY_SOCKET=%s", path);
    }
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

void sup_notify(sup_notify_t *n, const char *fmt, ...)
{
    if (n->fd < 0)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof buf)
        len = sizeof buf - 1;
    if (sendto(n->fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&n->addr,
               n->addrlen) < 0)
        SLOG_WARN("notify.send", "err=\"%s\"", strerror(errno));
}

void sup_notify_close(sup_notify_t *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
