/* nlu_train: trains the built-in agent's intent classifier at build time.
 *
 *   nlu_train UTTERANCES.tsv LEXICON.tsv MODEL.c REPORT.txt
 *
 * A multinomial logistic regression (softmax) over the hashed features of
 * src/nlu_features.c, fitted by AdaGrad SGD with L2 on the training 80% of
 * the labelled lines (nlu_is_heldout() keeps the rest out). A 5-fold
 * cross-validation inside the training lines gives out-of-fold predictions
 * from which the softmax temperature (calibration) and the clarify threshold
 * are chosen, so the held-out lines are used for nothing but the report.
 * The model is written as C source (weights as int16 with one scale), the
 * report (accuracy, per-intent precision and recall, confusion matrix,
 * coverage at the threshold, the errors) to REPORT and stdout.
 *
 * Everything is deterministic: the same input gives the same bytes. */
#include "nlu_model.h"
#include "souk/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C NLU_INTENT_COUNT
#define EPOCHS 40
#define LEARNING_RATE 0.4
#define L2 1e-5
#define FOLDS 5
/* A feature seen in fewer training lines is noise (mostly character
 * n-grams of one typo): left out of the model. */
#define MIN_COUNT 2
#define FOLD_SEED 0xf01du
/* The clarify threshold is the lowest at which the cross-validated
 * accuracy of the answers at or above it reaches this. */
#define TARGET_CONFIDENT_ACCURACY 0.97
#define THRESHOLD_FLOOR 0.40

typedef struct {
    nlu_intent_t intent;
    const char *text;
    bool heldout;
    int fold;
    size_t nf;                  /* every feature of the text */
    uint32_t *feats;            /* sorted hashes */
    size_t nidx;                /* those in the training vocabulary */
    uint32_t *idx;              /* their vocabulary indices */
} example_t;

typedef struct {
    size_t nkeys;
    double *w;                  /* nkeys × C */
    double bias[C];
} dense_t;

typedef struct {
    example_t *ex;
    size_t n;
    uint32_t *vocab;            /* sorted hashes of the training features */
    size_t nvocab;
} corpus_t;

static void *s_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "nlu_train: out of memory\n");
        exit(1);
    }
    return p;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return (x > y) - (x < y);
}

static long s_find(const uint32_t *keys, size_t n, uint32_t key)
{
    const uint32_t *p = bsearch(&key, keys, n, sizeof key, s_cmp_u32);
    return p ? p - keys : -1;
}

typedef struct {
    const char *word;
    uint32_t feature;
} lexeme_t;

static int s_cmp_lexeme(const void *a, const void *b)
{
    return strcmp(((const lexeme_t *) a)->word, ((const lexeme_t *) b)->word);
}

/* Reads CLASS<TAB>word word... lines into a sorted lexicon (arrays and words
 * malloc'ed, kept for the life of the program). A word in two classes is an
 * error. */
static int s_lexicon_read(const char *path, nlu_lexicon_t *lex)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return SOUK_EIO;
    lexeme_t *v = NULL;
    size_t n = 0, cap = 0, linecap = 0;
    char *line = NULL;
    int lineno = 0, rc = SOUK_OK;
    while (rc == SOUK_OK && getline(&line, &linecap, f) >= 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        char *tab = strchr(line, '\t'), *save = NULL;
        if (!tab) {
            fprintf(stderr, "%s:%d: expected CLASS<TAB>words\n", path, lineno);
            rc = SOUK_EPROTO;
            break;
        }
        *tab = '\0';
        uint32_t feature = nlu_class_feature(line);
        for (char *w = strtok_r(tab + 1, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 512;
                v = realloc(v, cap * sizeof *v);
                if (!v) {
                    fprintf(stderr, "nlu_train: out of memory\n");
                    exit(1);
                }
            }
            for (char *c = w; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char) (*c - 'A' + 'a');
            v[n].word = strdup(w);
            v[n++].feature = feature;
        }
    }
    free(line);
    fclose(f);
    if (rc != SOUK_OK) {
        for (size_t i = 0; i < n; i++)
            free((void *) v[i].word);
        free(v);
        return rc;
    }
    qsort(v, n, sizeof *v, s_cmp_lexeme);
    const char **words = s_xcalloc(n, sizeof *words);
    uint32_t *features = s_xcalloc(n, sizeof *features);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u && strcmp(words[u - 1], v[i].word) == 0) {
            if (features[u - 1] != v[i].feature) {
                fprintf(stderr, "%s: \"%s\" is in two classes\n", path, v[i].word);
                rc = SOUK_EPROTO;
            }
            free((void *) v[i].word);
            continue;
        }
        words[u] = v[i].word;
        features[u++] = v[i].feature;
    }
    free(v);
    lex->n = (uint32_t) u;
    lex->words = words;
    lex->features = features;
    return rc;
}

static void s_corpus_build(corpus_t *cp, const nlu_lexicon_t *lex, const nlu_sample_t *samples, size_t n)
{
    uint32_t buf[NLU_FEATURES_MAX];
    size_t total = 0;
    cp->ex = s_xcalloc(n, sizeof *cp->ex);
    cp->n = n;
    for (size_t i = 0; i < n; i++) {
        example_t *e = &cp->ex[i];
        e->intent = samples[i].intent;
        e->text = samples[i].text;
        e->heldout = nlu_is_heldout(e->text);
        e->fold = (int) (nlu_hash(e->text, strlen(e->text), FOLD_SEED) % FOLDS);
        e->nf = nlu_features(lex, e->text, buf, NLU_FEATURES_MAX);
        e->feats = s_xcalloc(e->nf, sizeof *e->feats);
        memcpy(e->feats, buf, e->nf * sizeof *buf);
        if (!e->heldout)
            total += e->nf;
    }
    cp->vocab = s_xcalloc(total, sizeof *cp->vocab);
    for (size_t i = 0; i < n; i++)
        if (!cp->ex[i].heldout) {
            memcpy(cp->vocab + cp->nvocab, cp->ex[i].feats, cp->ex[i].nf * sizeof *buf);
            cp->nvocab += cp->ex[i].nf;
        }
    qsort(cp->vocab, cp->nvocab, sizeof *cp->vocab, s_cmp_u32);
    size_t u = 0;
    for (size_t i = 0, j; i < cp->nvocab; i = j) {
        for (j = i; j < cp->nvocab && cp->vocab[j] == cp->vocab[i]; j++)
            ;
        if (j - i >= MIN_COUNT)
            cp->vocab[u++] = cp->vocab[i];
    }
    cp->nvocab = u;
    for (size_t i = 0; i < n; i++) {
        example_t *e = &cp->ex[i];
        e->idx = s_xcalloc(e->nf, sizeof *e->idx);
        for (size_t k = 0; k < e->nf; k++) {
            long at = s_find(cp->vocab, cp->nvocab, e->feats[k]);
            if (at >= 0)
                e->idx[e->nidx++] = (uint32_t) at;
        }
    }
}

static void s_corpus_free(corpus_t *cp)
{
    for (size_t i = 0; i < cp->n; i++) {
        free(cp->ex[i].feats);
        free(cp->ex[i].idx);
    }
    free(cp->ex);
    free(cp->vocab);
}

static void s_dense_scores(const dense_t *m, const example_t *e, double scores[C])
{
    double x = 1.0 / sqrt((double) e->nf);
    for (int c = 0; c < C; c++)
        scores[c] = m->bias[c];
    for (size_t k = 0; k < e->nidx; k++)
        for (int c = 0; c < C; c++)
            scores[c] += x * m->w[(size_t) e->idx[k] * C + c];
}

/* xorshift32: a fixed, portable shuffle. */
static uint32_t s_next(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* Fits m on the training examples outside fold `skip` (-1: all of them). */
static void s_fit(dense_t *m, const corpus_t *cp, int skip)
{
    size_t *order = s_xcalloc(cp->n, sizeof *order), n = 0;
    double *g2 = s_xcalloc(cp->nvocab * C, sizeof *g2), bg2[C] = { 0 };
    m->nkeys = cp->nvocab;
    m->w = s_xcalloc(cp->nvocab * C, sizeof *m->w);
    memset(m->bias, 0, sizeof m->bias);
    for (size_t i = 0; i < cp->n; i++)
        if (!cp->ex[i].heldout && cp->ex[i].fold != skip)
            order[n++] = i;
    uint32_t rng = 0x9e3779b9u;
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        for (size_t i = n; i > 1; i--) {
            size_t j = s_next(&rng) % i, t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        for (size_t i = 0; i < n; i++) {
            const example_t *e = &cp->ex[order[i]];
            double p[C], x = 1.0 / sqrt((double) e->nf);
            s_dense_scores(m, e, p);
            nlu_softmax(p, C, 1.0);
            for (int c = 0; c < C; c++) {
                double err = p[c] - (c == (int) e->intent);
                bg2[c] += err * err;
                m->bias[c] -= LEARNING_RATE * err / sqrt(bg2[c] + 1e-8);
                for (size_t k = 0; k < e->nidx; k++) {
                    size_t at = (size_t) e->idx[k] * C + c;
                    double g = err * x + L2 * m->w[at];
                    g2[at] += g * g;
                    m->w[at] -= LEARNING_RATE * g / sqrt(g2[at] + 1e-8);
                }
            }
        }
    }
    free(g2);
    free(order);
}

static int s_argmax(const double *p, int n, int skip)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (i != skip && (best < 0 || p[i] > p[best]))
            best = i;
    return best;
}

static double s_nll(double (*logits)[C], const nlu_intent_t *truth, size_t n, double t)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double p[C];
        memcpy(p, logits[i], sizeof p);
        nlu_softmax(p, C, t);
        sum -= log(p[truth[i]] + 1e-12);
    }
    return sum / (double) n;
}

typedef struct {
    double temperature, threshold;
    double cv_accuracy, cv_log_loss;    /* out of fold, at that temperature */
} calibration_t;

/* Out-of-fold raw scores of every training line: each fold scored by a
 * model fitted on the other folds. Returns how many lines. */
static size_t s_out_of_fold(const corpus_t *cp, double (*logits)[C], nlu_intent_t *truth)
{
    size_t n = 0;
    for (int f = 0; f < FOLDS; f++) {
        dense_t m;
        s_fit(&m, cp, f);
        for (size_t i = 0; i < cp->n; i++)
            if (!cp->ex[i].heldout && cp->ex[i].fold == f) {
                s_dense_scores(&m, &cp->ex[i], logits[n]);
                truth[n++] = cp->ex[i].intent;
            }
        free(m.w);
    }
    return n;
}

/* The lowest threshold whose confident answers reach the target accuracy. */
static double s_choose_threshold(const double *conf, const int *pred, const nlu_intent_t *truth, size_t n)
{
    for (int k = (int) (THRESHOLD_FLOOR * 100); k <= 99; k++) {
        int confident = 0, right = 0;
        for (size_t i = 0; i < n; i++)
            if (conf[i] >= k / 100.0) {
                confident++;
                right += pred[i] == (int) truth[i];
            }
        if (confident && (double) right / confident >= TARGET_CONFIDENT_ACCURACY)
            return k / 100.0;
    }
    return 0.99;
}

/* Cross-validation inside the training lines: the temperature that
 * minimises the out-of-fold log loss, then the clarify threshold. */
static void s_calibrate(const corpus_t *cp, calibration_t *cal)
{
    double (*logits)[C] = s_xcalloc(cp->n, sizeof *logits);
    nlu_intent_t *truth = s_xcalloc(cp->n, sizeof *truth);
    size_t n = s_out_of_fold(cp, logits, truth);
    cal->temperature = 1.0;
    cal->cv_log_loss = INFINITY;
    for (int k = 20; k <= 400; k += 5) {
        double nll = s_nll(logits, truth, n, k / 100.0);
        if (nll < cal->cv_log_loss) {
            cal->cv_log_loss = nll;
            cal->temperature = k / 100.0;
        }
    }
    nlu_eval_t cv;
    nlu_eval_init(&cv, 0.0);
    double *conf = s_xcalloc(n, sizeof *conf);
    int *pred = s_xcalloc(n, sizeof *pred);
    for (size_t i = 0; i < n; i++) {
        double p[C];
        memcpy(p, logits[i], sizeof p);
        nlu_softmax(p, C, cal->temperature);
        pred[i] = s_argmax(p, C, -1);
        conf[i] = p[pred[i]];
        nlu_eval_add(&cv, truth[i], (nlu_intent_t) pred[i], conf[i]);
    }
    cal->cv_accuracy = nlu_eval_accuracy(&cv);
    cal->threshold = s_choose_threshold(conf, pred, truth, n);
    free(conf);
    free(pred);
    free(truth);
    free(logits);
}

/* The runtime form: int16 weights with one scale; features whose weights
 * all round to zero are dropped. Arrays are malloc'ed into q. */
static void s_quantize(const dense_t *m, const uint32_t *vocab, const nlu_lexicon_t *lex,
                       double temperature, double threshold, nlu_model_t *q)
{
    double max = 0;
    for (size_t i = 0; i < m->nkeys * C; i++)
        if (fabs(m->w[i]) > max)
            max = fabs(m->w[i]);
    double scale = max > 0 ? max / 32767.0 : 1.0;
    uint32_t *keys = s_xcalloc(m->nkeys, sizeof *keys);
    int16_t *w = s_xcalloc(m->nkeys * C, sizeof *w);
    size_t n = 0;
    for (size_t k = 0; k < m->nkeys; k++) {
        bool any = false;
        for (int c = 0; c < C; c++) {
            long v = lround(m->w[k * C + c] / scale);
            w[n * C + c] = (int16_t) v;
            any |= v != 0;
        }
        if (any)
            keys[n++] = vocab[k];
    }
    q->nkeys = (uint32_t) n;
    q->keys = keys;
    q->weights = w;
    q->scale = (float) scale;
    for (int c = 0; c < C; c++)
        q->bias[c] = (float) m->bias[c];
    q->temperature = (float) temperature;
    q->threshold = (float) threshold;
    q->lexicon = *lex;
}

/* The quantized model's answer on a held-out line, exactly as the runtime
 * computes it: its intent and confidence. */
static int s_predict(const nlu_model_t *q, const example_t *e, double *confidence)
{
    double p[C];
    nlu_model_scores(q, e->feats, e->nf, p);
    nlu_softmax(p, C, q->temperature);
    int best = s_argmax(p, C, -1);
    *confidence = p[best];
    return best;
}

static nlu_eval_t s_evaluate(const corpus_t *cp, const nlu_model_t *q, double threshold)
{
    nlu_eval_t ev;
    nlu_eval_init(&ev, threshold);
    for (size_t i = 0; i < cp->n; i++)
        if (cp->ex[i].heldout) {
            double conf;
            int best = s_predict(q, &cp->ex[i], &conf);
            nlu_eval_add(&ev, cp->ex[i].intent, (nlu_intent_t) best, conf);
        }
    return ev;
}

static void s_report_errors(const corpus_t *cp, const nlu_model_t *q, FILE *out)
{
    fprintf(out, "\n== held-out errors (truth -> predicted, confidence)\n");
    for (size_t i = 0; i < cp->n; i++)
        if (cp->ex[i].heldout) {
            double conf;
            int best = s_predict(q, &cp->ex[i], &conf);
            if (best != (int) cp->ex[i].intent)
                fprintf(out, "%-14s -> %-14s %.2f  %s\n", nlu_intent_name(cp->ex[i].intent),
                        nlu_intent_name((nlu_intent_t) best), conf, cp->ex[i].text);
        }
}

static void s_report(const corpus_t *cp, const nlu_model_t *q, const calibration_t *cal, FILE *out,
                     bool errors)
{
    nlu_eval_t ev = s_evaluate(cp, q, q->threshold);
    fprintf(out, "souk NLU intent classifier, trained by nlu_train on data/nlu/utterances.tsv\n\n");
    fprintf(out, "lines           %zu (train %zu, held-out %d)\n", cp->n, cp->n - (size_t) ev.n, ev.n);
    fprintf(out, "features        %zu in at least %d training lines, %u in the model (%zu bytes)\n",
            cp->nvocab, MIN_COUNT, q->nkeys, (size_t) q->nkeys * (sizeof(uint32_t) + C * sizeof(int16_t)));
    fprintf(out, "cross-val.      %.3f accuracy, %.3f log loss (%d folds of the training lines)\n",
            cal->cv_accuracy, cal->cv_log_loss, FOLDS);
    fprintf(out, "temperature     %.2f (fitted on the cross-validation)\n", q->temperature);
    fprintf(out, "threshold       %.2f (the lowest with cross-validated accuracy >= %.2f above it)\n",
            q->threshold, TARGET_CONFIDENT_ACCURACY);
    fprintf(out, "\n== held-out split\n");
    nlu_eval_print(&ev, out);
    fprintf(out, "\n== threshold trade-off on the held-out split\n%-10s %9s %9s\n",
            "threshold", "coverage", "accuracy");
    for (int k = 30; k <= 95; k += 5) {
        nlu_eval_t t = s_evaluate(cp, q, k / 100.0);
        fprintf(out, "%-10.2f %9.3f %9.3f\n", k / 100.0, nlu_eval_coverage(&t),
                nlu_eval_confident_accuracy(&t));
    }
    if (errors)
        s_report_errors(cp, q, out);
}

static int s_write_model(const nlu_model_t *q, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return SOUK_EIO;
    fprintf(f, "/* Generated by nlu_train from data/nlu/utterances.tsv: do not edit. */\n"
               "#include \"src/nlu_model.h\"\n\nstatic const uint32_t s_keys[%u] = {", q->nkeys);
    for (uint32_t i = 0; i < q->nkeys; i++)
        fprintf(f, "%s0x%08x,", i % 8 ? " " : "\n    ", q->keys[i]);
    fprintf(f, "\n};\n\nstatic const int16_t s_weights[%u * NLU_INTENT_COUNT] = {", q->nkeys);
    for (uint32_t i = 0; i < q->nkeys; i++) {
        fputs("\n   ", f);
        for (int c = 0; c < C; c++)
            fprintf(f, " %d,", q->weights[i * C + c]);
    }
    fprintf(f, "\n};\n\nstatic const char *const s_words[%u] = {", q->lexicon.n);
    for (uint32_t i = 0; i < q->lexicon.n; i++) {
        fputs(i % 8 ? " \"" : "\n    \"", f);
        for (const unsigned char *c = (const unsigned char *) q->lexicon.words[i]; *c; c++)
            fprintf(f, *c < 0x80 && *c != '"' && *c != '\\' && *c >= 0x20 ? "%c" : "\\%03o", *c);
        fputs("\",", f);
    }
    fprintf(f, "\n};\n\nstatic const uint32_t s_word_features[%u] = {", q->lexicon.n);
    for (uint32_t i = 0; i < q->lexicon.n; i++)
        fprintf(f, "%s0x%08x,", i % 8 ? " " : "\n    ", q->lexicon.features[i]);
    fprintf(f, "\n};\n\nconst nlu_model_t nlu_model = {\n    .nkeys = %u,\n    .keys = s_keys,\n"
               "    .weights = s_weights,\n    .scale = %a,\n    .bias = {", q->nkeys, q->scale);
    for (int c = 0; c < C; c++)
        fprintf(f, " %a,", q->bias[c]);
    fprintf(f, " },\n    .temperature = %a,\n    .threshold = %a,\n"
               "    .lexicon = { %u, s_words, s_word_features },\n};\n",
            q->temperature, q->threshold, q->lexicon.n);
    return fclose(f) == 0 ? SOUK_OK : SOUK_EIO;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: nlu_train UTTERANCES.tsv LEXICON.tsv MODEL.c REPORT.txt\n");
        return 2;
    }
    const char *model_path = argv[3], *report_path = argv[4];
    nlu_sample_t *samples;
    nlu_lexicon_t lex;
    size_t n;
    int rc = nlu_samples_read(argv[1], &samples, &n);
    if (rc == SOUK_OK)
        rc = s_lexicon_read(argv[2], &lex);
    if (rc != SOUK_OK) {
        fprintf(stderr, "nlu_train: cannot read %s or %s (%d)\n", argv[1], argv[2], rc);
        return 1;
    }
    corpus_t cp = { 0 };
    calibration_t cal;
    dense_t m;
    nlu_model_t q;
    s_corpus_build(&cp, &lex, samples, n);
    s_calibrate(&cp, &cal);
    s_fit(&m, &cp, -1);
    s_quantize(&m, cp.vocab, &lex, cal.temperature, cal.threshold, &q);

    FILE *report = fopen(report_path, "w");
    if (report) {
        s_report(&cp, &q, &cal, report, true);
        rc = fclose(report) == 0 ? SOUK_OK : SOUK_EIO;
    }
    if (!report || rc != SOUK_OK)
        fprintf(stderr, "nlu_train: cannot write %s\n", report_path);
    else if ((rc = s_write_model(&q, model_path)) != SOUK_OK)
        fprintf(stderr, "nlu_train: cannot write %s\n", model_path);
    else
        s_report(&cp, &q, &cal, stdout, false);

    for (uint32_t i = 0; i < lex.n; i++)
        free((void *) lex.words[i]);
    free((void *) lex.words);
    free((void *) lex.features);
    free((void *) q.keys);
    free((void *) q.weights);
    free(m.w);
    s_corpus_free(&cp);
    nlu_samples_free(samples, n);
    return rc == SOUK_OK && report ? 0 : 1;
}
