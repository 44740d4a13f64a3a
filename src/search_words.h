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

#define WORD_MIN 3
#define WORD_MAX 32

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

#endif
