/* souk NLU: what the built-in agent makes of one customer message.
 *
 * Two independent readings of the text: the intent (a linear classifier
 * trained at build time from data/nlu/utterances.tsv by src/nlu_train.c and
 * compiled into the library) with a calibrated confidence, and the slots
 * (rule-based: quantities, references to what was just shown, order ids,
 * price limits, yes/no, changes of mind, the product query). Both are pure
 * functions of the text: no state, no allocation, safe from any thread.
 *
 * The conversation manager decides what to do with them; a result whose
 * confidence is below nlu_clarify_threshold() should get a clarifying
 * question rather than an action. */
#ifndef SOUK_NLU_H
#define SOUK_NLU_H

#include <stdbool.h>
#include <stdio.h>

#define NLU_INTENT_MAP(XX)                                                   \
    XX(PRODUCT_SEARCH, "product_search")                                     \
    XX(PLACE_ORDER,    "place_order")                                        \
    XX(ORDER_STATUS,   "order_status")                                       \
    XX(SUPPORT,        "support")                                            \
    XX(GENERAL,        "general")

typedef enum {
#define XX(name, text) NLU_##name,
    NLU_INTENT_MAP(XX)
#undef XX
    NLU_INTENT_COUNT
} nlu_intent_t;

/* "product_search"...; "unknown" for a value out of range. */
const char *nlu_intent_name(nlu_intent_t intent);
/* SOUK_OK and *out set, or SOUK_EINVAL for a name that is not an intent. */
int nlu_intent_parse(const char *name, nlu_intent_t *out);

/* ---- intent ------------------------------------------------------------ */

typedef struct {
    nlu_intent_t intent;            /* the most probable intent */
    double confidence;              /* its probability, 0..1 */
    nlu_intent_t runner_up;         /* the second most probable */
    double runner_up_confidence;
    double probs[NLU_INTENT_COUNT]; /* the whole distribution, sums to 1 */
    bool clarify;                   /* confidence < nlu_clarify_threshold() */
} nlu_result_t;

/* Classifies text (UTF-8; only the first NLU_TEXT_MAX bytes are read).
 * SOUK_EINVAL when text or out is NULL; an empty message is "general" with
 * clarify set. */
int nlu_classify(const char *text, nlu_result_t *out);

/* The confidence below which the agent asks instead of acting; chosen by the
 * trainer on cross-validated training predictions (see nlu_eval.txt). */
double nlu_clarify_threshold(void);

#define NLU_TEXT_MAX 1024

/* ---- slots ------------------------------------------------------------- */

typedef enum {
    NLU_REF_NONE,
    NLU_REF_INDEX,          /* "the second one", "#2", "number 2": index */
    NLU_REF_THAT,           /* "that one", "this", "it": the one in focus */
    NLU_REF_LAST,           /* "the last one": the last item shown */
    NLU_REF_CHEAPEST,       /* "the cheaper one", "the cheapest" */
    NLU_REF_PRICIEST,       /* "the most expensive", "the pricier one" */
    NLU_REF_DESCRIBED,      /* "the blue one": match the shown items by query */
} nlu_ref_t;

typedef enum { NLU_CONFIRM_NONE, NLU_CONFIRM_YES, NLU_CONFIRM_NO } nlu_confirm_t;
typedef enum { NLU_REFINE_NONE, NLU_REFINE_CHEAPER, NLU_REFINE_PRICIER } nlu_refine_t;

#define NLU_QUERY_MAX 256

typedef struct {
    int quantity;               /* 0 when the message names none */
    bool change;                /* a change of mind: "actually make it three" */
    nlu_ref_t ref;
    int ref_index;              /* 1-based, for NLU_REF_INDEX */
    char order_id[9];           /* "SK-7K3Q9" normalised, "" when none */
    bool cancel_order;          /* "cancel my order", "cancel SK-7K3Q9" */
    bool has_price_min, has_price_max;
    double price_min, price_max;
    char currency[4];           /* "USD", "EUR", "GBP" or "" when unsaid */
    nlu_confirm_t confirm;
    nlu_refine_t refine;        /* "cheaper ones", "more expensive" */
    char query[NLU_QUERY_MAX];  /* product words, filler stripped ("running shoes") */
} nlu_slots_t;

/* Extracts the slots of text (UTF-8; the first NLU_TEXT_MAX bytes).
 * SOUK_EINVAL when text or out is NULL. Never fails otherwise: a message
 * without slots gives a zeroed struct. */
int nlu_extract_slots(const char *text, nlu_slots_t *out);

/* Validates and normalises an order id: "sk7k3q9", "SK 7K3Q9", "sk-7k3q9"
 * → "SK-7K3Q9" (Crockford: I and L read as 1, O as 0). out holds 9 bytes.
 * SOUK_EINVAL when s is not an order id. */
int nlu_order_id_normalize(const char *s, char out[9]);

const char *nlu_ref_name(nlu_ref_t ref);
const char *nlu_confirm_name(nlu_confirm_t confirm);
const char *nlu_refine_name(nlu_refine_t refine);

/* ---- evaluation -------------------------------------------------------- */

/* Counts over a labelled set: what the hybrid LLM classifier reuses to report
 * the calls it saves (confident / n). */
typedef struct {
    int n;                      /* messages evaluated */
    int correct;
    int confident;              /* confidence >= threshold */
    int confident_correct;
    double threshold;
    int confusion[NLU_INTENT_COUNT][NLU_INTENT_COUNT]; /* [truth][predicted] */
} nlu_eval_t;

/* True when text belongs to the held-out 20% (a hash of the text; the trainer
 * never sees these lines). */
bool nlu_is_heldout(const char *text);

/* Classifies every held-out line of the TSV file at path (intent<TAB>text,
 * '#' comments) with the compiled model and fills *out.
 * SOUK_EIO when the file cannot be read, SOUK_EPROTO on a malformed line
 * (its number written to stderr). */
int nlu_evaluate_file(const char *path, nlu_eval_t *out);

void nlu_eval_init(nlu_eval_t *e, double threshold);
void nlu_eval_add(nlu_eval_t *e, nlu_intent_t truth, nlu_intent_t predicted, double confidence);
double nlu_eval_accuracy(const nlu_eval_t *e);
/* Share of messages at or above the threshold: the LLM calls saved. */
double nlu_eval_coverage(const nlu_eval_t *e);
/* Accuracy among the messages at or above the threshold. */
double nlu_eval_confident_accuracy(const nlu_eval_t *e);
/* Accuracy, per-intent precision / recall / F1 and the confusion matrix. */
void nlu_eval_print(const nlu_eval_t *e, FILE *out);

/* ---- CLI --------------------------------------------------------------- */

/* `souk understand TEXT [--json]`: intent, confidence, runner-up, clarify and
 * slots as a table, or as one JSON object on one line. Returns SOUK_OK or
 * SOUK_EINVAL / SOUK_ENOMEM / SOUK_EIO. */
int nlu_print_understanding(const char *text, bool json, FILE *out);

#endif
