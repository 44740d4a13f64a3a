/* Text for the error map in include/souk/error.h. */
#include "souk/error.h"

#include <string.h>

const char *souk_strerror(int code)
{
    switch (code) {
    case SOUK_OK: return "ok";
#define XX(name, c, text) case SOUK_##name: return text;
    SOUK_ERRNO_MAP(XX)
#undef XX
    }
    return "unknown error";
}

const char *souk_errname(int code)
{
    switch (code) {
    case SOUK_OK: return "OK";
#define XX(name, c, text) case SOUK_##name: return #name;
    SOUK_ERRNO_MAP(XX)
#undef XX
    }
    return "EUNKNOWN";
}

int souk_errcode(const char *name)
{
    if (!name)
        return SOUK_EIO;
#define XX(n, c, text) if (strcmp(name, #n) == 0) return SOUK_##n;
    SOUK_ERRNO_MAP(XX)
#undef XX
    return strcmp(name, "OK") == 0 ? SOUK_OK : SOUK_EIO;
}
