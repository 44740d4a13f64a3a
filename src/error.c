/* Text for the error map in include/souk/error.h. */
#include "souk/error.h"

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
