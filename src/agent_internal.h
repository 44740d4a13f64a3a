/* The built-in agent's private parts, shared by its files:
 *
 *   agent.c          the turn: state in, decide, act, state out; routing
 *   agent_read.c     what a message says: NLU, marker words, item parts
 *   agent_decide.c   what to do with it, given the dialog state
 *   agent_state.c    the dialog state and its JSON
 *   agent_tools.c    tool calls and their results as typed rows
 *   agent_shop.c     search, refinements, product details, policies
 *   agent_order.c    resolving items, confirmations, placing an order
 *   agent_care.c     order status, cancellations, tickets, small talk
 *   agent_reply.c    the reply text: money, lists, the 1600-byte cap */
#ifndef SOUK_AGENT_INTERNAL_H
#define SOUK_AGENT_INTERNAL_H

#include "souk/agent.h"
#include "souk/nlu.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AG_SKU_MAX 64
#define AG_NAME_MAX 160
#define AG_CUR_MAX 4
#define AG_ID_MAX 16
#define AG_TURN_MAX 130
#define AG_LINES_MAX 5
#define AG_TEXT_MAX 160     /* attribute texts kept in a reply line */

/* ---- the dialog state (agent_state.c) ------------------------------------ */

/* A product as a tool result gave it. */
typedef struct {
    char sku[AG_SKU_MAX];
    char name[AG_NAME_MAX];
    int64_t price_cents;
    char currency[AG_CUR_MAX];
    bool in_stock;
} ag_product_t;

typedef struct {
    ag_product_t p;             /* p.price_cents: the unit price */
    int qty;
} ag_line_t;

typedef enum {
    AG_PENDING_NONE,
    AG_PENDING_ORDER,           /* a confirmation: lines, waiting for YES */
    AG_PENDING_CANCEL,          /* a cancellation: order_id, waiting for YES */
    AG_PENDING_OFFER,           /* "want one?" after details: focus */
} ag_pending_kind_t;

typedef struct {
    ag_pending_kind_t kind;
    ag_line_t lines[AG_LINES_MAX];
    int n_lines;
    char order_id[AG_ID_MAX];
    char key_turn[AG_TURN_MAX]; /* the turn that asked: the idem keys' turn */
    int64_t since_ms;
} ag_pending_t;

typedef struct {
    ag_product_t shown[AGENT_LIST_MAX]; /* the last list, in its order */
    int n_shown;
    char query[NLU_QUERY_MAX];  /* the search behind it ("" after a non-search list) */
    int64_t query_max_cents;    /* its price limit; 0: none */
    float query_score;          /* its best hit's score: the bar for refinements */
    ag_product_t focus;         /* the product talked about ("that one") */
    bool has_focus;
    ag_pending_t pending;
    int want_qty;               /* a quantity waiting for "which one?" */
    char last_order[AG_ID_MAX]; /* the order talked about last */
    int clarify_streak;         /* clarifying questions in a row */
    int turns;
} ag_state_t;

void ag_state_init(ag_state_t *st);
/* Reads a state object; missing or bad fields keep their init values. */
void ag_state_from_json(ag_state_t *st, const json_t *o);
json_t *ag_state_to_json(const ag_state_t *st);
/* The state a turn starts from: state_json's, or, when state_json was
 * written by this same turn (a re-run), the one that turn started from. */
void ag_state_load(ag_state_t *st, const char *state_json, const char *turn_id);
/* The state text to keep: st, stamped with turn_id, carrying the state the
 * turn started from (for a re-run). NULL when out of memory. */
char *ag_state_save(const ag_state_t *st, const char *state_json_in, const char *turn_id);
bool ag_pending_live(const ag_state_t *st, int64_t now_ms);
void ag_state_show(ag_state_t *st, const ag_product_t *items, int n, const char *query,
                   int64_t max_cents);
void ag_copy(char *dst, size_t cap, const char *src);

/* ---- reading a message (agent_read.c) ------------------------------------ */

enum { AG_POLICY_SHIPPING = 1, AG_POLICY_RETURNS = 2, AG_POLICY_WARRANTY = 4 };

/* One item of "2 mascaras and 1 lipstick". */
typedef struct {
    int qty;                    /* 0: unsaid */
    nlu_ref_t ref;
    int ref_index;
    char query[NLU_QUERY_MAX];
} ag_part_t;

typedef struct {
    nlu_result_t nlu;
    nlu_slots_t slots;
    char norm[NLU_TEXT_MAX + 2]; /* " lowercased words, one space apart " */
    bool greeting, thanks, bye, help, complaint, handoff, detail, similar, add, ask_sell;
    bool status_words;          /* "where is", "track", "status" */
    bool cancel_words;          /* "cancel", "cancellation" */
    bool question;              /* "which…", "how much…", "…?" */
    bool order_verb;            /* "take", "buy", "order", "add"… */
    bool my_order;              /* "my order", "my last order": the one talked about */
    bool bare_qty;              /* the message is a quantity and nothing else */
    unsigned policy;            /* AG_POLICY_* asked about */
    char topic[NLU_QUERY_MAX];  /* slots.query without policy / filler words */
    ag_part_t parts[AG_LINES_MAX];
    int n_parts;                /* >= 2 only for several items in one message */
} ag_read_t;

void ag_read(const char *text, ag_read_t *rd);
/* Whether norm (as in ag_read_t) has the words w (" w "), or a word
 * starting with w when w ends in '*'. */
bool ag_has(const char *norm, const char *w);
bool ag_has_any(const char *norm, const char *const *list);

/* ---- deciding (agent_decide.c) -------------------------------------------- */

#define AG_ACTIONS(XX)                                                       \
    XX(CONFIRM, "confirm", true)    /* YES to a pending order / cancel */    \
    XX(DECLINE, "decline", false)   /* NO to it */                           \
    XX(CHANGE, "change", false)     /* "actually make it three" */           \
    XX(ORDER, "order", false)       /* pick items: to a confirmation */      \
    XX(SEARCH, "search", false)                                              \
    XX(REFINE, "refine", false)     /* "cheaper ones" */                     \
    XX(SIMILAR, "similar", false)   /* "more like the first" */              \
    XX(DETAIL, "detail", false)     /* "tell me about the second one" */     \
    XX(POLICY, "policy", false)     /* shipping / returns / warranty */      \
    XX(STATUS, "status", false)                                              \
    XX(CANCEL, "cancel", true)      /* asks to cancel an order */            \
    XX(TICKET, "ticket", true)      /* a complaint */                        \
    XX(HANDOFF, "handoff", true)    /* "talk to a human" */                  \
    XX(GREET, "greet", false)                                                \
    XX(THANKS, "thanks", false)                                              \
    XX(BYE, "bye", false)                                                    \
    XX(HELP, "help", false)                                                  \
    XX(CLARIFY, "clarify", false)

typedef enum {
#define XX(name, text, async) AG_ACT_##name,
    AG_ACTIONS(XX)
#undef XX
    AG_ACT_COUNT
} ag_act_t;

const char *ag_act_name(ag_act_t a);
bool ag_act_async(ag_act_t a);
ag_act_t ag_decide(const ag_read_t *rd, const ag_state_t *st, int64_t now_ms);

/* ---- reply text (agent_reply.c) ------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} ag_text_t;

void ag_text_add(ag_text_t *t, const char *s);
__attribute__((format(printf, 2, 3))) void ag_text_printf(ag_text_t *t, const char *fmt, ...);
void ag_text_money(ag_text_t *t, int64_t cents, const char *currency);
/* "*name*" with the name's own '*' and newlines taken out. */
void ag_text_bold(ag_text_t *t, const char *name);
/* "1. *Name* — $9.99" lines, with "(out of stock)" where it is. */
void ag_text_products(ag_text_t *t, const ag_product_t *p, int n);
/* Drops trailing white space. */
void ag_text_trim(ag_text_t *t);
/* The final reply: trimmed, at most AGENT_REPLY_MAX bytes (cut at a line,
 * else a word, never inside a UTF-8 sequence). Takes the buffer. */
char *ag_text_finish(ag_text_t *t);
void ag_text_free(ag_text_t *t);
/* Writes the first name of a profile name, cleaned for a greeting ("" when
 * none is usable) into out. */
void ag_first_name(const char *profile, char *out, size_t cap);

/* ---- the turn (agent.c) --------------------------------------------------- */

typedef struct {
    const agent_input_t *in;
    const char *shop;
    char name[64];              /* the user's first name, "" when unknown */
    ag_state_t st;
    ag_read_t rd;
    agent_tools_t tools;
    ag_text_t out;
    bool changed;
    ag_act_t act;
} ag_turn_t;

/* ---- tools as typed rows (agent_tools.c) ---------------------------------- */

typedef struct {
    ag_product_t p;
    float score;
} ag_hit_t;

/* search_products: hits best first into hits (room for limit). max_cents 0:
 * no limit. SOUK_OK (maybe 0 hits) or the tool's error. */
int ag_search(ag_turn_t *t, const char *query, int64_t max_cents, int limit, ag_hit_t *hits,
              int *n);

typedef struct {
    ag_product_t p;
    int64_t stock;
    char brand[AG_NAME_MAX];
    char description[AG_TEXT_MAX * 2];
    char shipping[AG_TEXT_MAX], returns[AG_TEXT_MAX], warranty[AG_TEXT_MAX];
} ag_detail_t;

int ag_get_product(ag_turn_t *t, const char *sku, ag_detail_t *out);

typedef struct {
    char id[AG_ID_MAX];
    char status[16];
    int64_t total_cents;
    char currency[AG_CUR_MAX];
    char created[32];           /* ISO 8601, "" when absent */
    ag_line_t lines[AG_LINES_MAX + 1];
    int n_lines;                /* as listed (at most AG_LINES_MAX + 1) */
    int n_items;                /* how many the order has in all */
} ag_order_t;

/* get_order, list_orders (newest first, at most cap), place_order,
 * cancel_order: orders read from the tool's result. */
int ag_get_order(ag_turn_t *t, const char *order_id, ag_order_t *out);
int ag_list_orders(ag_turn_t *t, ag_order_t *out, int cap, int *n);
int ag_place_order(ag_turn_t *t, const ag_line_t *lines, int n, const char *key_turn,
                   ag_order_t *out);
int ag_cancel_order(ag_turn_t *t, const char *order_id, const char *key_turn, ag_order_t *out);
/* create_support_ticket; order_id may be NULL. The ticket id into id. */
int ag_open_ticket(ag_turn_t *t, const char *subject, const char *message, const char *order_id,
                   char id[AG_ID_MAX]);

/* ---- acting (agent_shop.c, agent_order.c, agent_care.c) ------------------- */

void ag_do_search(ag_turn_t *t);
void ag_do_refine(ag_turn_t *t);
void ag_do_similar(ag_turn_t *t);
void ag_do_detail(ag_turn_t *t);
void ag_do_policy(ag_turn_t *t);
/* Lists products close to p (in stock, p itself left out) after a line
 * saying why; nothing when there are none. */
void ag_offer_alternatives(ag_turn_t *t, const ag_product_t *p);
/* Resolves a reference or product words to one shown or found product;
 * *ambiguous when several fit (they are then shown, asking which). */
bool ag_resolve(ag_turn_t *t, nlu_ref_t ref, int ref_index, const char *query,
                ag_product_t *out, bool *ambiguous);

/* Whether name holds every word of query (3+ letters, any case, a plural's
 * "s" dropped; shorter words are ignored); false when no word counts. */
bool ag_name_match(const char *name, const char *query);

void ag_do_order(ag_turn_t *t);
void ag_do_change(ag_turn_t *t);
void ag_do_confirm(ag_turn_t *t);
void ag_do_decline(ag_turn_t *t);
/* Appends the confirmation text of the pending order. */
void ag_confirmation_text(ag_turn_t *t);

void ag_do_status(ag_turn_t *t);
void ag_do_cancel(ag_turn_t *t);
void ag_do_ticket(ag_turn_t *t);
void ag_do_small_talk(ag_turn_t *t);
void ag_do_clarify(ag_turn_t *t);
/* Appends the order as lines and a total. */
void ag_order_text(ag_turn_t *t, const ag_order_t *o);

#endif
