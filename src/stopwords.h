/* stopwords: words that carry no product meaning. Private to search and the
 * local embedder. */
#ifndef SOUK_STOPWORDS_H
#define SOUK_STOPWORDS_H

#include <stdbool.h>
#include <stddef.h>

/* Whether w[0..len) (lower case) is a stopword. */
bool stopword_is(const char *w, size_t len);

#endif
