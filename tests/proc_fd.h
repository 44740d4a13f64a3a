/* What a process has open, from /proc: for the tests that check a
 * descriptor was not inherited, or was given back. */
#ifndef SOUK_TEST_PROC_FD_H
#define SOUK_TEST_PROC_FD_H

#include <stdbool.h>
#include <sys/types.h>

/* Whether pid has a descriptor whose /proc/PID/fd link reads target (a
 * path, or "pipe:[N]"); false when pid is gone or unreadable. */
bool proc_has_fd_to(pid_t pid, const char *target);

#endif
