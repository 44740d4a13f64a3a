/* stemmer: Snowball's english stemmer (libstemmer), loaded on first use.
 *
 * Private to search and the local embedder. libstemmer's tables cost about
 * 330 KB of relocated, private memory in every process that maps the
 * library; souk is one binary for every actor, so the library is opened
 * with dlopen() by the first stemmer made, and only processes that embed
 * text pay for it. */
#ifndef SOUK_STEMMER_H
#define SOUK_STEMMER_H

#include <stddef.h>

typedef struct stemmer_s stemmer_t;

/* SOUK_EUNAVAIL when libstemmer cannot be loaded, SOUK_ENOMEM. */
int stemmer_new(stemmer_t **out);
void stemmer_free(stemmer_t **self_p);
/* The stem of w[0..len) (lower case) and its length; valid until the next
 * call on the handle. w itself when the stemmer cannot stem it. */
const char *stemmer_stem(stemmer_t *self, const char *w, size_t len, size_t *stem_len);

#endif
