/* libFuzzer target for the bus decoder: any byte string must decode or be
 * rejected with an error — never crash, leak or over-allocate — and whatever
 * decodes must encode back to the same bytes. Built with clang by
 * scripts/fuzz (run for a bounded time by scripts/test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"
#include "souk/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    souk_msg_t m;
    if (souk_msg_decode(data, size, &m, NULL, 0) != SOUK_OK)
        return 0;
    char *buf;
    size_t len;
    if (souk_msg_encode(&m, &buf, &len) == SOUK_OK) {
        souk_msg_t again;
        if (souk_msg_decode(buf, len, &again, NULL, 0) != SOUK_OK)
            abort();
        char *buf2;
        size_t len2;
        if (souk_msg_encode(&again, &buf2, &len2) != SOUK_OK || len2 != len
            || memcmp(buf, buf2, len) != 0)
            abort();
        free(buf2);
        souk_msg_clear(&again);
        free(buf);
    }
    souk_msg_clear(&m);
    return 0;
}
