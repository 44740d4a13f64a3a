/* search_words: the catalogue's vocabulary, for correcting misspelt queries.
 *
 * Private to search. The build collects every word of the products' texts
 * (words_set_*) into a sorted list stored in the index; at query time a word
 * that no product has is replaced by the nearest catalogue word within one
 * or two edits (speller_*): "mascra" -> "mascara", "iphon" -> "iphone". */
#ifndef SOUK_SEARCH_WORDS_H
#define SOUK_SEARCH_WORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stemmer.h"

#define WORD_MIN 3
#define WORD_MAX 32

/* The next word of *p (ASCII lower-cased, UTF-8 bytes kept, at most
 * WORD_MAX bytes; longer words are cut) into w, NUL-terminated; returns its
 * length, 0 at the end of the text. */
size_t words_next(const char **p, char *w);

typedef struct words_set_s words_set_t;

int words_set_new(words_set_t **out);
/* Adds the words of text (ASCII lower-cased; UTF-8 kept). */
int words_set_add_text(words_set_t *self, const char *text);
/* The words sorted (strcmp), each NUL-terminated; caller frees *blob. */
int words_set_join(const words_set_t *self, char **blob, size_t *len);
void words_set_free(words_set_t **self_p);

typedef struct speller_s speller_t;

/* Over a sorted blob as words_set_join makes (borrowed: keep it alive). */
int speller_new(const char *blob, size_t len, speller_t **out);
void speller_free(speller_t **self_p);
bool speller_known(const speller_t *self, const char *w, size_t len);
/* The nearest known word to w[0..len) sharing its first letter, within 1
 * edit (2 for words of 8 letters or more); NULL if none. */
const char *speller_correct(const speller_t *self, const char *w, size_t len);

/* Which products hold which word stems: the exact-match side of search. */
typedef struct terms_s terms_t;

int terms_new(terms_t **out);
void terms_free(terms_t **self_p);
/* Adds product id (ids in ascending order) to the postings of each stem of
 * text, stopwords left out. */
int terms_add_text(terms_t *self, stemmer_t *stemmer, uint32_t id, const char *text);
/* The sorted tables vindex_writer_set_terms() takes; they belong to self
 * and stay valid until terms_free(). */
int terms_finish(terms_t *self, const char **terms, size_t *terms_len, const uint32_t **str_off,
                 const uint32_t **term_off, size_t *n_terms, const uint32_t **postings,
                 size_t *n_postings);

#endif
