/* What the NLU trainer (src/nlu_train.c, a build-time tool) and the runtime
 * classifier (src/nlu.c) must agree on: the features of a text, the
 * train / held-out split, the labelled file format and the model layout the
 * trainer writes as C source. Private to the library and the trainer. */
#ifndef SOUK_NLU_MODEL_H
#define SOUK_NLU_MODEL_H

#include "souk/nlu.h"

#include <stddef.h>
#include <stdint.h>

/* Word classes (data/nlu/lexicon.tsv): a token found in words (sorted by
 * strcmp) adds the feature of its class, so "beef steak" reads as products
 * even when the utterances never named them. */
typedef struct {
    uint32_t n;
    const char *const *words;
    const uint32_t *features;   /* the class feature of each word */
} nlu_lexicon_t;

/* A linear model over hashed features: score[c] = bias[c] + scale *
 * Σ weights[k*COUNT + c] * x_k, where x_k = 1/sqrt(n) for each of the n
 * distinct features of the text found in keys (sorted ascending);
 * probabilities are softmax(score / temperature). */
typedef struct {
    uint32_t nkeys;
    const uint32_t *keys;
    const int16_t *weights;     /* nkeys × NLU_INTENT_COUNT */
    float scale;
    float bias[NLU_INTENT_COUNT];
    float temperature;
    float threshold;            /* the clarify threshold */
    nlu_lexicon_t lexicon;
} nlu_model_t;

/* Defined by the generated nlu_model.c. */
extern const nlu_model_t nlu_model;

/* The most features a text can have: the text is cut at NLU_TEXT_MAX bytes. */
#define NLU_FEATURES_MAX (NLU_TEXT_MAX * 8)

/* Writes the distinct feature hashes of text into out (at most max), sorted
 * ascending; returns how many. Features: lowercased word unigrams and
 * bigrams (with start and end marks, numbers folded to one token, order ids
 * to another), character 3- and 4-grams of each word, the lexicon classes of
 * the words, and a length bucket. */
size_t nlu_features(const nlu_lexicon_t *lex, const char *text, uint32_t *out, size_t max);

/* The feature a lexicon class adds ("product" → its hash). */
uint32_t nlu_class_feature(const char *class_name);

/* 32-bit FNV-1a: the split and the feature hashes. */
uint32_t nlu_hash(const void *data, size_t len, uint32_t seed);

/* One labelled line of the TSV. */
typedef struct {
    nlu_intent_t intent;
    char *text;
    int line;
} nlu_sample_t;

/* Reads every labelled line of path into a malloc'ed array (caller frees
 * with nlu_samples_free). SOUK_EIO when unreadable, SOUK_EPROTO on a line
 * without a tab or with an unknown intent (reported on stderr), SOUK_ENOMEM. */
int nlu_samples_read(const char *path, nlu_sample_t **out, size_t *n);
void nlu_samples_free(nlu_sample_t *samples, size_t n);

/* Softmax of n scores divided by temperature, in place. */
void nlu_softmax(double *scores, int n, double temperature);

/* The raw scores (before the temperature) of the sorted, distinct features
 * feats under model m: what both the trainer's report and the runtime use. */
void nlu_model_scores(const nlu_model_t *m, const uint32_t *feats, size_t nf,
                      double scores[NLU_INTENT_COUNT]);

#endif
