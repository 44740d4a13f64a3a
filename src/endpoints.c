/* Endpoint names; see include/souk/endpoints.h. */
#include "souk/endpoints.h"

#include <stdio.h>

const char *souk_endpoint(char *buf, size_t len, const char *run_dir, souk_endpoint_t which,
                          int index)
{
    static const char *const names[] = {
        [SOUK_EP_CONTROL] = "control", [SOUK_EP_EVENTS] = "events",
        [SOUK_EP_SESSIONS] = "sessions", [SOUK_EP_SENDER] = "sender",
        [SOUK_EP_TOOL] = "tool",
    };
    if (which == SOUK_EP_TOOL)
        snprintf(buf, len, "ipc://%s/%s-%d", run_dir, names[which], index);
    else
        snprintf(buf, len, "ipc://%s/%s", run_dir, names[which]);
    return buf;
}
