/* The labelled utterance file, the train / held-out split and the
 * evaluation counts: shared by the trainer (which reports on the held-out
 * split at build time) and the library (nlu_evaluate_file, which the hybrid
 * LLM classifier reuses to count the calls it saves). */
#include "nlu_model.h"
#include "souk/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seed of the split hash; changing it reshuffles every line. */
#define SPLIT_SEED 0x50c5u
#define HELDOUT_ONE_IN 5

static const char *s_intent_names[] = {
#define XX(name, text) text,
    NLU_INTENT_MAP(XX)
#undef XX
};

const char *nlu_intent_name(nlu_intent_t intent)
{
    return (unsigned) intent < NLU_INTENT_COUNT ? s_intent_names[intent] : "unknown";
}

int nlu_intent_parse(const char *name, nlu_intent_t *out)
{
    for (int i = 0; name && i < NLU_INTENT_COUNT; i++)
        if (strcmp(name, s_intent_names[i]) == 0) {
            *out = (nlu_intent_t) i;
            return SOUK_OK;
        }
    return SOUK_EINVAL;
}

bool nlu_is_heldout(const char *text)
{
    return nlu_hash(text, strlen(text), SPLIT_SEED) % HELDOUT_ONE_IN == 0;
}

void nlu_samples_free(nlu_sample_t *samples, size_t n)
{
    for (size_t i = 0; samples && i < n; i++)
        free(samples[i].text);
    free(samples);
}

static char *s_trim(char *s)
{
    size_t len = strlen(s);
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
        s[--len] = '\0';
    while (*s == ' ')
        s++;
    return s;
}

/* Parses one line into *s; 1 when it is a comment or blank, 0 when a
 * sample, SOUK_EPROTO when malformed. */
static int s_parse_line(char *line, nlu_sample_t *s)
{
    char *l = s_trim(line);
    if (*l == '\0' || *l == '#')
        return 1;
    char *tab = strchr(l, '\t');
    if (!tab)
        return SOUK_EPROTO;
    *tab = '\0';
    char *text = s_trim(tab + 1);
    if (*text == '\0' || nlu_intent_parse(l, &s->intent) != SOUK_OK)
        return SOUK_EPROTO;
    s->text = strdup(text);
    return s->text ? 0 : SOUK_ENOMEM;
}

int nlu_samples_read(const char *path, nlu_sample_t **out, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return SOUK_EIO;
    nlu_sample_t *v = NULL;
    size_t count = 0, cap = 0, linecap = 0;
    char *line = NULL;
    int rc = SOUK_OK, lineno = 0;
    while (getline(&line, &linecap, f) >= 0) {
        lineno++;
        if (count == cap) {
            cap = cap ? cap * 2 : 1024;
            nlu_sample_t *grown = realloc(v, cap * sizeof *v);
            if (!grown) {
                rc = SOUK_ENOMEM;
                break;
            }
            v = grown;
        }
        int r = s_parse_line(line, &v[count]);
        if (r < 0) {
            if (r == SOUK_EPROTO)
                fprintf(stderr, "%s:%d: expected INTENT<TAB>TEXT with a known intent\n", path, lineno);
            rc = r;
            break;
        }
        if (r == 0)
            v[count++].line = lineno;
    }
    if (rc == SOUK_OK && ferror(f))
        rc = SOUK_EIO;
    free(line);
    fclose(f);
    if (rc != SOUK_OK) {
        nlu_samples_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return SOUK_OK;
}

void nlu_eval_init(nlu_eval_t *e, double threshold)
{
    memset(e, 0, sizeof *e);
    e->threshold = threshold;
}

void nlu_eval_add(nlu_eval_t *e, nlu_intent_t truth, nlu_intent_t predicted, double confidence)
{
    bool ok = truth == predicted;
    e->n++;
    e->correct += ok;
    if (confidence >= e->threshold) {
        e->confident++;
        e->confident_correct += ok;
    }
    e->confusion[truth][predicted]++;
}

static double s_ratio(int a, int b)
{
    return b ? (double) a / b : 0.0;
}

double nlu_eval_accuracy(const nlu_eval_t *e)
{
    return s_ratio(e->correct, e->n);
}

double nlu_eval_coverage(const nlu_eval_t *e)
{
    return s_ratio(e->confident, e->n);
}

double nlu_eval_confident_accuracy(const nlu_eval_t *e)
{
    return s_ratio(e->confident_correct, e->confident);
}

void nlu_eval_print(const nlu_eval_t *e, FILE *out)
{
    fprintf(out, "messages        %d\n", e->n);
    fprintf(out, "accuracy        %.3f (%d/%d)\n", nlu_eval_accuracy(e), e->correct, e->n);
    fprintf(out, "threshold       %.2f\n", e->threshold);
    fprintf(out, "coverage        %.3f (%d/%d at or above the threshold: LLM calls saved)\n",
            nlu_eval_coverage(e), e->confident, e->n);
    fprintf(out, "acc. confident  %.3f (%d/%d)\n", nlu_eval_confident_accuracy(e),
            e->confident_correct, e->confident);
    fprintf(out, "\n%-15s %9s %7s %6s %8s\n", "intent", "precision", "recall", "f1", "support");
    for (int c = 0; c < NLU_INTENT_COUNT; c++) {
        int tp = e->confusion[c][c], truth = 0, predicted = 0;
        for (int k = 0; k < NLU_INTENT_COUNT; k++) {
            truth += e->confusion[c][k];
            predicted += e->confusion[k][c];
        }
        double p = s_ratio(tp, predicted), r = s_ratio(tp, truth);
        double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0.0;
        fprintf(out, "%-15s %9.3f %7.3f %6.3f %8d\n", nlu_intent_name((nlu_intent_t) c), p, r, f1, truth);
    }
    fprintf(out, "\nconfusion (rows: truth, columns: predicted)\n%-15s", "");
    for (int c = 0; c < NLU_INTENT_COUNT; c++)
        fprintf(out, " %14s", nlu_intent_name((nlu_intent_t) c));
    fputc('\n', out);
    for (int t = 0; t < NLU_INTENT_COUNT; t++) {
        fprintf(out, "%-15s", nlu_intent_name((nlu_intent_t) t));
        for (int c = 0; c < NLU_INTENT_COUNT; c++)
            fprintf(out, " %14d", e->confusion[t][c]);
        fputc('\n', out);
    }
}
