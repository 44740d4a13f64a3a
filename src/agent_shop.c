/* Shopping: search, "cheaper ones", "more like the first", a product's
 * details and its shipping / returns / warranty, and resolving what the
 * customer points at ("the second one", "that one", "the mascara") to one
 * product — first among what was shown, then in the catalogue.
 *
 * Relevance: the local embedder scores unrelated products around 0.1-0.25
 * and real matches above 0.3 ("phone": 0.36, "mascara": 0.84), so a hit is
 * shown from SCORE_LIST_MIN and only when near the best one. */
#include "agent_internal.h"

#include "souk/error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_LIST_MIN 0.30f    /* a hit worth showing */
#define SCORE_LIST_REL 0.55f    /* ... and at least this share of the best */
#define SCORE_PROBE_MIN 0.40f   /* the classifier was unsure: stricter */
#define SCORE_PICK_MIN 0.45f    /* "the mascara": one product, clearly... */
#define SCORE_PICK_GAP 0.10f    /* ... ahead of the next by this much */
#define SCORE_PRIOR_GAP 0.12f   /* a shown product wins within this of the best */
#define SCORE_REFINE_REL 0.60f  /* "cheaper ones": this share of the first search's best */
#define SEARCH_FETCH 10         /* hits asked for, to filter and sort */
#define SEARCH_WIDE 20          /* the tool's maximum, for "pricier ones" */
#define DESCRIPTION_SHOWN 300
#define ALTERNATIVES_MAX 3

/* ---- helpers ---------------------------------------------------------------- */

/* Keeps the hits worth showing (at most AGENT_LIST_MAX), skipping skip
 * (may be NULL); returns how many. */
static int s_relevant(ag_hit_t *hits, int n, float min, const char *skip)
{
    float best = 0.f;
    for (int i = 0; i < n; i++)
        if (hits[i].score > best && (!skip || strcmp(hits[i].p.sku, skip) != 0))
            best = hits[i].score;
    int k = 0;
    for (int i = 0; i < n && k < AGENT_LIST_MAX; i++) {
        if (skip && strcmp(hits[i].p.sku, skip) == 0)
            continue;
        if (hits[i].score < min || hits[i].score < best * SCORE_LIST_REL)
            continue;
        hits[k++] = hits[i];
    }
    return k;
}

static void s_products_of(const ag_hit_t *hits, int n, ag_product_t *out)
{
    for (int i = 0; i < n; i++)
        out[i] = hits[i].p;
}

static int s_by_price(const void *a, const void *b)
{
    int64_t x = ((const ag_product_t *) a)->price_cents;
    int64_t y = ((const ag_product_t *) b)->price_cents;
    return x < y ? -1 : x > y;
}

static bool s_is_shown(const ag_state_t *st, const char *sku)
{
    for (int i = 0; i < st->n_shown; i++)
        if (strcmp(st->shown[i].sku, sku) == 0)
            return true;
    return false;
}

/* Writes s for a reply: quotes instead of WhatsApp's formatting marks. */
static void s_quote(ag_text_t *out, const char *s)
{
    ag_text_add(out, "\u201c");
    char buf[NLU_QUERY_MAX];
    ag_copy(buf, sizeof buf, s);
    for (char *p = buf; *p; p++)
        if (strchr("*_~`\n\r", *p))
            *p = ' ';
    ag_text_add(out, buf);
    ag_text_add(out, "\u201d");
}

bool ag_name_match(const char *name, const char *query)
{
    char lname[AG_NAME_MAX], q[NLU_QUERY_MAX];
    ag_copy(lname, sizeof lname, name);
    ag_copy(q, sizeof q, query);
    for (char *p = lname; *p; p++)
        *p = (char) tolower((unsigned char) *p);
    int words = 0;
    for (char *save = NULL, *w = strtok_r(q, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        size_t n = strlen(w);
        if (n > 4 && w[n - 1] == 's')
            w[--n] = '\0';
        if (n < 3)
            continue;
        if (!strstr(lname, w))
            return false;
        words++;
    }
    return words > 0;
}

static void s_limit_text(ag_turn_t *t, int64_t max_cents, const char *currency)
{
    if (max_cents > 0) {
        ag_text_add(&t->out, " under ");
        ag_text_money(&t->out, max_cents, currency);
    }
}

static const char *s_currency(const ag_turn_t *t)
{
    if (t->st.n_shown)
        return t->st.shown[0].currency;
    return t->rd.slots.currency[0] ? t->rd.slots.currency : "USD";
}

/* The maximum price the customer asked for, in cents; 0: none. */
static int64_t s_asked_max(const ag_turn_t *t)
{
    const nlu_slots_t *s = &t->rd.slots;
    return s->has_price_max && s->price_max > 0 ? (int64_t) (s->price_max * 100.0 + 0.5) : 0;
}

/* The line under a list: how to pick (one item: "Want it?", which a
 * quantity or YES answers). */
static void s_list_footer(ag_turn_t *t, int n, bool more)
{
    if (n == 1) {
        ag_text_add(&t->out, "\nWant it? Reply with how many, e.g. \u201c2\u201d.");
        t->st.pending = (ag_pending_t) { .kind = AG_PENDING_OFFER, .since_ms = t->in->now_ms };
        ag_copy(t->st.pending.key_turn, sizeof t->st.pending.key_turn, t->in->turn_id);
    } else if (more)
        ag_text_add(&t->out, "\nReply e.g. \u201c#2\u201d to order one, \u201ctell me more about "
                             "#1\u201d, or ask for cheaper ones.");
    else
        ag_text_add(&t->out, "\nReply e.g. \u201c#2\u201d to order one.");
}

static void s_tool_trouble(ag_turn_t *t)
{
    ag_text_add(&t->out, "Sorry, I can't reach the catalogue right now. Please try again in a "
                         "moment.");
}

/* ---- search --------------------------------------------------------------------- */

void ag_do_search(ag_turn_t *t)
{
    const char *query = t->rd.slots.query;
    bool probe = t->rd.nlu.clarify && !t->rd.ask_sell;
    if (!query[0]) {
        ag_text_add(&t->out, "What are you looking for? Tell me a product, a brand or what it's "
                             "for \u2014 e.g. \u201crunning shoes under 50\u201d.");
        return;
    }
    int64_t max = s_asked_max(t);
    ag_hit_t hits[SEARCH_FETCH];
    int n = 0;
    int rc = ag_search(t, query, max, SEARCH_FETCH, hits, &n);
    if (rc != SOUK_OK) {
        s_tool_trouble(t);
        return;
    }
    n = s_relevant(hits, n, probe ? SCORE_PROBE_MIN : SCORE_LIST_MIN, NULL);
    if (n == 0 && probe) {
        ag_do_clarify(t);
        return;
    }
    if (n == 0 && max > 0) {
        /* nothing under the limit: the lowest prices there are, said so */
        int m = 0;
        if (ag_search(t, query, 0, SEARCH_FETCH, hits, &m) == SOUK_OK)
            m = s_relevant(hits, m, SCORE_LIST_MIN, NULL);
        ag_text_add(&t->out, "I couldn't find ");
        s_quote(&t->out, query);
        s_limit_text(t, max, s_currency(t));
        if (m == 0) {
            ag_text_add(&t->out, ". Try other words \u2014 a product type, a brand or what it's "
                                 "for.");
            return;
        }
        ag_product_t shown[AGENT_LIST_MAX];
        s_products_of(hits, m, shown);
        qsort(shown, (size_t) m, sizeof *shown, s_by_price);
        ag_text_add(&t->out, ". The lowest prices I have:\n");
        ag_text_products(&t->out, shown, m);
        ag_state_show(&t->st, shown, m, query, 0);
        s_list_footer(t, m, false);
        return;
    }
    if (n == 0) {
        ag_text_add(&t->out, "Sorry, I couldn't find anything like ");
        s_quote(&t->out, query);
        ag_text_add(&t->out, " in our shop. Try other words \u2014 a product type, a brand or "
                             "what it's for.");
        return;
    }
    ag_product_t shown[AGENT_LIST_MAX];
    s_products_of(hits, n, shown);
    ag_text_add(&t->out, "Here's what I found for ");
    s_quote(&t->out, query);
    s_limit_text(t, max, shown[0].currency);
    ag_text_add(&t->out, ":\n");
    ag_text_products(&t->out, shown, n);
    ag_state_show(&t->st, shown, n, query, max);
    t->st.query_score = hits[0].score;
    s_list_footer(t, n, true);
}

/* ---- cheaper / pricier ---------------------------------------------------------- */

void ag_do_refine(ag_turn_t *t)
{
    ag_state_t *st = &t->st;
    const char *query = t->rd.slots.query[0] ? t->rd.slots.query : st->query;
    if (!query[0] && st->has_focus)
        query = st->focus.name;
    if (!query[0]) {
        ag_text_add(&t->out, "Sure \u2014 what are you looking for? e.g. \u201cwatches under "
                             "100\u201d.");
        return;
    }
    bool cheaper = t->rd.slots.refine == NLU_REFINE_CHEAPER;
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < st->n_shown; i++) {
        lo = st->shown[i].price_cents < lo ? st->shown[i].price_cents : lo;
        hi = st->shown[i].price_cents > hi ? st->shown[i].price_cents : hi;
    }
    if (!st->n_shown)
        lo = 0;
    int64_t max = s_asked_max(t);
    if (cheaper && lo > 0 && (max == 0 || lo - 1 < max))
        max = lo - 1;
    ag_hit_t hits[SEARCH_WIDE];
    int n = 0;
    if (!cheaper || max > 0 || lo == 0) {
        if (ag_search(t, query, cheaper ? max : 0, cheaper ? SEARCH_FETCH : SEARCH_WIDE, hits, &n)
            != SOUK_OK) {
            s_tool_trouble(t);
            return;
        }
    }
    /* as relevant as the first list (not just cheap), then the price rule */
    float bar = st->query_score * SCORE_REFINE_REL;
    bar = bar > SCORE_LIST_MIN ? bar : SCORE_LIST_MIN;
    int k = 0;
    ag_product_t shown[AGENT_LIST_MAX];
    for (int i = 0; i < n && k < AGENT_LIST_MAX; i++) {
        if (hits[i].score < bar)
            continue;
        if (s_is_shown(st, hits[i].p.sku) || (!cheaper && hits[i].p.price_cents <= hi))
            continue;
        shown[k++] = hits[i].p;
    }
    char q[NLU_QUERY_MAX];
    ag_copy(q, sizeof q, query);
    if (k == 0) {
        ag_text_add(&t->out, cheaper ? "That's the lowest price I have for "
                                     : "That's the top of the range I have for ");
        s_quote(&t->out, q);
        if (st->n_shown > 1 && cheaper) {
            ag_product_t sorted[AGENT_LIST_MAX];
            int m = st->n_shown;
            memcpy(sorted, st->shown, sizeof sorted);
            qsort(sorted, (size_t) m, sizeof *sorted, s_by_price);
            ag_text_add(&t->out, ". From the lowest price:\n");
            ag_text_products(&t->out, sorted, m);
            float score = st->query_score;
            ag_state_show(st, sorted, m, q, st->query_max_cents);
            st->query_score = score;
            s_list_footer(t, m, false);
        } else
            ag_text_add(&t->out, ".");
        return;
    }
    if (cheaper)
        qsort(shown, (size_t) k, sizeof *shown, s_by_price);
    ag_text_add(&t->out, cheaper ? "Cheaper options for " : "Pricier options for ");
    s_quote(&t->out, q);
    ag_text_add(&t->out, ":\n");
    ag_text_products(&t->out, shown, k);
    float score = st->query_score;
    ag_state_show(st, shown, k, q, cheaper ? max : 0);
    st->query_score = score;
    s_list_footer(t, k, false);
}

/* ---- resolving what the customer points at -------------------------------------- */

/* The best hit for query, preferring a shown product close to the best;
 * *ambiguous with the candidates shown when several fit. */
static bool s_pick(ag_turn_t *t, const char *query, ag_product_t *out, bool *ambiguous,
                   int *rc)
{
    ag_hit_t hits[SEARCH_FETCH];
    int n = 0;
    *rc = ag_search(t, query, 0, SEARCH_FETCH, hits, &n);
    if (*rc != SOUK_OK || n == 0)
        return false;
    for (int i = 0; i < n; i++)
        if (s_is_shown(&t->st, hits[i].p.sku) && hits[i].score >= SCORE_PICK_MIN
            && hits[i].score >= hits[0].score - SCORE_PRIOR_GAP) {
            *out = hits[i].p;
            return true;
        }
    if (hits[0].score >= SCORE_PICK_MIN
        && (n == 1 || hits[0].score - hits[1].score >= SCORE_PICK_GAP || hits[0].score >= 1.5f)) {
        *out = hits[0].p;
        return true;
    }
    int k = s_relevant(hits, n, SCORE_LIST_MIN, NULL);
    if (k >= 2) {
        ag_product_t shown[AGENT_LIST_MAX];
        s_products_of(hits, k, shown);
        ag_state_show(&t->st, shown, k, query, 0);
        *ambiguous = true;
    }
    return false;
}

bool ag_resolve(ag_turn_t *t, nlu_ref_t ref, int ref_index, const char *query,
                ag_product_t *out, bool *ambiguous)
{
    ag_state_t *st = &t->st;
    *ambiguous = false;
    switch (ref) {
    case NLU_REF_INDEX:
        if (ref_index >= 1 && ref_index <= st->n_shown) {
            *out = st->shown[ref_index - 1];
            return true;
        }
        return false;
    case NLU_REF_THAT:
        if (st->has_focus) {
            *out = st->focus;
            return true;
        }
        if (st->n_shown == 1) {
            *out = st->shown[0];
            return true;
        }
        *ambiguous = st->n_shown > 1;
        return false;
    case NLU_REF_LAST:
        if (st->n_shown) {
            *out = st->shown[st->n_shown - 1];
            return true;
        }
        return false;
    case NLU_REF_CHEAPEST:
    case NLU_REF_PRICIEST:
        for (int i = 0; i < st->n_shown; i++) {
            int64_t c = st->shown[i].price_cents;
            if (i == 0 || (ref == NLU_REF_CHEAPEST ? c < out->price_cents : c > out->price_cents))
                *out = st->shown[i];
        }
        return st->n_shown > 0;
    default:
        break;
    }
    if (!query || !query[0])
        return false;
    /* words: the catalogue, where a shown product close to the best wins
     * (by meaning, not spelling: "apples" is not the Apple MacBook shown);
     * "the blue one" with the conversation's words first ("blue running
     * shoes") */
    char wider[NLU_QUERY_MAX] = "";
    if (st->query[0] && !strstr(query, st->query)) {
        ag_copy(wider, sizeof wider, query);
        size_t n = strlen(wider);
        if (n + 2 < sizeof wider) {
            wider[n++] = ' ';
            ag_copy(wider + n, sizeof wider - n, st->query);
        }
    }
    const char *order[2] = { query, "" };
    if (ref == NLU_REF_DESCRIBED && wider[0]) {
        order[0] = wider;
        order[1] = query;
    }
    for (int i = 0; i < 2; i++) {
        int rc;
        if (!order[i][0])
            continue;
        if (s_pick(t, order[i], out, ambiguous, &rc))
            return true;
        if (*ambiguous || rc != SOUK_OK)
            return false;
    }
    return false;
}

/* The product a question is about: a reference, product words, or the one
 * in focus. */
static bool s_subject(ag_turn_t *t, const char *words, ag_product_t *out, bool *ambiguous)
{
    const nlu_slots_t *s = &t->rd.slots;
    *ambiguous = false;
    if (s->ref != NLU_REF_NONE || (words && words[0]))
        return ag_resolve(t, s->ref, s->ref_index, words, out, ambiguous);
    if (t->st.has_focus) {
        *out = t->st.focus;
        return true;
    }
    if (t->st.pending.kind == AG_PENDING_ORDER && t->st.pending.n_lines == 1) {
        *out = t->st.pending.lines[0].p;
        return true;
    }
    if (t->st.n_shown == 1) {
        *out = t->st.shown[0];
        return true;
    }
    return false;
}

static void s_which(ag_turn_t *t, const char *what)
{
    if (t->st.n_shown) {
        ag_text_printf(&t->out, "Which one do you mean%s?\n", what);
        ag_text_products(&t->out, t->st.shown, t->st.n_shown);
        ag_text_add(&t->out, "\nReply e.g. \u201c#2\u201d.");
    } else
        ag_text_printf(&t->out, "Which product do you mean%s? Tell me its name or what you're "
                                "looking for.", what);
}

/* ---- more like, details, policies ------------------------------------------------ */

void ag_do_similar(ag_turn_t *t)
{
    ag_product_t p;
    bool ambiguous;
    if (!s_subject(t, t->rd.slots.query, &p, &ambiguous)) {
        if (t->st.n_shown && t->rd.slots.ref == NLU_REF_NONE)
            p = t->st.shown[0];
        else {
            s_which(t, "");
            return;
        }
    }
    ag_hit_t hits[SEARCH_FETCH];
    int n = 0;
    if (ag_search(t, p.name, 0, SEARCH_FETCH, hits, &n) != SOUK_OK) {
        s_tool_trouble(t);
        return;
    }
    n = s_relevant(hits, n, SCORE_LIST_MIN, p.sku);
    if (n == 0) {
        ag_text_add(&t->out, "I don't have anything else like ");
        ag_text_bold(&t->out, p.name);
        ag_text_add(&t->out, ".");
        return;
    }
    ag_product_t shown[AGENT_LIST_MAX];
    s_products_of(hits, n, shown);
    ag_text_add(&t->out, "More like ");
    ag_text_bold(&t->out, p.name);
    ag_text_add(&t->out, ":\n");
    ag_text_products(&t->out, shown, n);
    ag_state_show(&t->st, shown, n, "", 0);
    s_list_footer(t, n, false);
}

static void s_stock_line(ag_turn_t *t, const ag_detail_t *d)
{
    if (d->stock <= 0)
        ag_text_add(&t->out, " \u00b7 out of stock");
    else if (d->stock <= 5)
        ag_text_printf(&t->out, " \u00b7 only %lld left", (long long) d->stock);
    else
        ag_text_add(&t->out, " \u00b7 in stock");
}

void ag_do_detail(ag_turn_t *t)
{
    ag_product_t p;
    bool ambiguous;
    if (!s_subject(t, t->rd.slots.query, &p, &ambiguous)) {
        if (!ambiguous && t->rd.slots.query[0]) {
            ag_text_add(&t->out, "Sorry, I couldn't find ");
            s_quote(&t->out, t->rd.slots.query);
            ag_text_add(&t->out, " in our shop.");
        } else
            s_which(t, "");
        return;
    }
    ag_detail_t d;
    int rc = ag_get_product(t, p.sku, &d);
    if (rc == SOUK_ENOTFOUND) {
        ag_text_add(&t->out, "Sorry, that product is no longer in our catalogue.");
        return;
    }
    if (rc != SOUK_OK) {
        s_tool_trouble(t);
        return;
    }
    ag_text_bold(&t->out, d.p.name);
    if (d.brand[0] && !strstr(d.p.name, d.brand))
        ag_text_printf(&t->out, " by %s", d.brand);
    ag_text_add(&t->out, "\n");
    ag_text_money(&t->out, d.p.price_cents, d.p.currency);
    s_stock_line(t, &d);
    ag_text_add(&t->out, "\n");
    if (d.description[0]) {
        char desc[DESCRIPTION_SHOWN + 4];
        ag_copy(desc, DESCRIPTION_SHOWN, d.description);
        if (strlen(d.description) >= DESCRIPTION_SHOWN)
            strcat(desc, "\u2026");
        ag_text_printf(&t->out, "%s\n", desc);
    }
    if (d.shipping[0])
        ag_text_printf(&t->out, "\U0001F69A %s\n", d.shipping);
    if (d.returns[0])
        ag_text_printf(&t->out, "\u21a9\ufe0f %s\n", d.returns);
    if (d.warranty[0])
        ag_text_printf(&t->out, "\U0001F6E1\ufe0f %s\n", d.warranty);
    t->st.focus = d.p;
    t->st.has_focus = true;
    if (d.stock <= 0) {
        ag_offer_alternatives(t, &d.p);
        return;
    }
    if (t->st.pending.kind == AG_PENDING_ORDER || t->st.pending.kind == AG_PENDING_CANCEL)
        return;
    ag_text_add(&t->out, "\nWant it? Reply with how many, e.g. \u201c2\u201d.");
    t->st.pending = (ag_pending_t) { .kind = AG_PENDING_OFFER, .since_ms = t->in->now_ms };
    ag_copy(t->st.pending.key_turn, sizeof t->st.pending.key_turn, t->in->turn_id);
}

#define ASK_A_PERSON                                                              \
    "For anything else (delivery to your area, a special case), reply \u201chuman\u201d and " \
    "a person from the shop will answer."

void ag_do_policy(ag_turn_t *t)
{
    ag_product_t p;
    bool ambiguous;
    unsigned ask = t->rd.policy;
    bool found = s_subject(t, t->rd.topic, &p, &ambiguous);
    /* words that name no product ("to Dubai"): the product in focus, and a
     * person for the rest */
    bool aside = !found && !ambiguous && t->rd.topic[0] && t->rd.slots.ref == NLU_REF_NONE;
    if (aside)
        found = s_subject(t, "", &p, &ambiguous);
    if (!found) {
        s_which(t, " (shipping, returns and warranty depend on the product)");
        ag_text_add(&t->out, "\n" ASK_A_PERSON);
        return;
    }
    ag_detail_t d;
    int rc = ag_get_product(t, p.sku, &d);
    if (rc != SOUK_OK) {
        if (rc == SOUK_ENOTFOUND)
            ag_text_add(&t->out, "Sorry, that product is no longer in our catalogue.");
        else
            s_tool_trouble(t);
        return;
    }
    t->st.focus = d.p;
    t->st.has_focus = true;
    ag_text_bold(&t->out, d.p.name);
    ag_text_add(&t->out, "\n");
    int said = 0;
    if ((ask & AG_POLICY_SHIPPING) && d.shipping[0] && ++said)
        ag_text_printf(&t->out, "\U0001F69A Shipping: %s\n", d.shipping);
    if ((ask & AG_POLICY_RETURNS) && d.returns[0] && ++said)
        ag_text_printf(&t->out, "\u21a9\ufe0f Returns: %s\n", d.returns);
    if ((ask & AG_POLICY_WARRANTY) && d.warranty[0] && ++said)
        ag_text_printf(&t->out, "\U0001F6E1\ufe0f Warranty: %s\n", d.warranty);
    if (!said)
        ag_text_add(&t->out, "I don't have that information for this product. Reply "
                             "\u201chuman\u201d and a person from the shop will answer.");
    else if (aside)
        ag_text_add(&t->out, ASK_A_PERSON);
}

void ag_offer_alternatives(ag_turn_t *t, const ag_product_t *p)
{
    ag_hit_t hits[SEARCH_FETCH];
    int n = 0;
    if (ag_search(t, p->name, 0, SEARCH_FETCH, hits, &n) != SOUK_OK)
        return;
    ag_product_t alt[ALTERNATIVES_MAX];
    int k = 0;
    for (int i = 0; i < n && k < ALTERNATIVES_MAX; i++)
        if (hits[i].p.in_stock && strcmp(hits[i].p.sku, p->sku) != 0
            && hits[i].score >= SCORE_LIST_MIN)
            alt[k++] = hits[i].p;
    if (!k)
        return;
    ag_text_add(&t->out, "\nSimilar items in stock:\n");
    ag_text_products(&t->out, alt, k);
    ag_state_show(&t->st, alt, k, "", 0);
    t->st.has_focus = false;
    ag_text_add(&t->out, "\nReply e.g. \u201c#1\u201d to order one instead.");
}
