/* assert_has / assert_lacks: a reply (or any text) contains, or does not
 * contain, needle; a failure prints the whole text, which is what one wants
 * to read when a conversation test fails. A NULL text fails both. Macros over
 * cmocka's fail_msg and assert_non_null (the test includes <cmocka.h>). */
#ifndef SOUK_TEST_ASSERT_TEXT_H
#define SOUK_TEST_ASSERT_TEXT_H

#include <string.h>

#define assert_has(text, needle)                                                  \
    do {                                                                          \
        const char *t_ = (text);                                                  \
        if (!t_ || !strstr(t_, needle))                                           \
            fail_msg("expected \"%s\" in:\n%s", needle, t_ ? t_ : "(nothing)");   \
    } while (0)
#define assert_lacks(text, needle)                                                \
    do {                                                                          \
        const char *t_ = (text);                                                  \
        assert_non_null(t_);                                                      \
        if (strstr(t_, needle))                                                   \
            fail_msg("did not expect \"%s\" in:\n%s", needle, t_);                \
    } while (0)

#endif
