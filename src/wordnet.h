/* wordnet: read-only lookups in the WordNet 3.0 database files (wndb(5)).
 *
 * Private to the local embedder. The index and data files are mapped, not
 * parsed: a lemma is found by binary search over the sorted index lines and
 * a synset is read at its byte offset in the data file, so opening costs a
 * scan for line starts (a few ms) and the pages are shared by every process
 * through the page cache. Not thread-safe per handle; no global state. */
#ifndef SOUK_WORDNET_H
#define SOUK_WORDNET_H

#include <stddef.h>
#include <stdint.h>

typedef enum { WORDNET_NOUN, WORDNET_VERB, WORDNET_ADJ, WORDNET_POS_COUNT } wordnet_pos_t;

typedef struct wordnet_s wordnet_t;

/* Opens the database in dir (e.g. /usr/share/wordnet). SOUK_ENOTFOUND when a
 * file is missing, SOUK_EIO, SOUK_ENOMEM. */
int wordnet_open(const char *dir, wordnet_t **out);
/* Unmaps everything and sets *self_p to NULL; NULL is a no-op. */
void wordnet_close(wordnet_t **self_p);
/* A short text naming this database's version (sizes of the data files),
 * for an embedder's parameter hash. Valid while the handle is open. */
const char *wordnet_identity(const wordnet_t *self);

/* Synset offsets of a lemma (lower case, '_' between words), most frequent
 * sense first; returns how many were written (at most max), 0 if unknown. */
int wordnet_senses(const wordnet_t *self, wordnet_pos_t pos, const char *lemma, size_t len,
                   uint32_t *offsets, int max);
/* Direct hypernyms ("@", "@i") of the synset at offset; returns the count. */
int wordnet_hypernyms(const wordnet_t *self, wordnet_pos_t pos, uint32_t offset, uint32_t *out,
                      int max);
/* Base forms of word in pos by WordNet's morphology (exception list, then
 * suffix rules), keeping only forms that are lemmas. Writes them as NUL-
 * terminated strings one after another into buf; returns how many. */
int wordnet_base_forms(const wordnet_t *self, wordnet_pos_t pos, const char *word, size_t len,
                       char *buf, size_t buflen);

#endif
