#include "proc_fd.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool proc_has_fd_to(pid_t pid, const char *target)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        char path[340], link[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0) {
            link[n] = '\0';
            found = strcmp(link, target) == 0;
        }
    }
    if (d)
        closedir(d);
    return found;
}
