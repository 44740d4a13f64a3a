/* What a customer message says, for the agent: the NLU's intent and slots,
 * plus the marker words the classifier does not report (a greeting, a
 * complaint, a request for a person, a policy question, "tell me more",
 * "more like", "also"), and the items of a message that orders several
 * ("2 mascaras and 1 lipstick"). A pure function of the text. */
#include "agent_internal.h"

#include <ctype.h>
#include <string.h>

#define LIST(...) ((const char *const[]) { __VA_ARGS__, NULL })

/* " lowercased words one space apart ": apostrophes dropped ("don't":
 * "dont"), other ASCII punctuation a space, UTF-8 kept as it is. */
static void s_normalize(const char *text, char *out, size_t cap)
{
    size_t o = 0;
    out[o++] = ' ';
    for (const unsigned char *p = (const unsigned char *) text; *p && o + 2 < cap; p++) {
        if (*p == '\'')
            continue;
        if (p[0] == 0xE2 && p[1] == 0x80 && p[2] == 0x99) {   /* ’ */
            p += 2;
            continue;
        }
        char c = *p >= 0x80 ? (char) *p : isalnum(*p) ? (char) tolower(*p) : ' ';
        if (c == ' ' && out[o - 1] == ' ')
            continue;
        out[o++] = c;
    }
    if (out[o - 1] != ' ')
        out[o++] = ' ';
    out[o] = '\0';
}

bool ag_has(const char *norm, const char *w)
{
    char pat[96];
    size_t n = strlen(w);
    bool prefix = n && w[n - 1] == '*';
    if (prefix)
        n--;
    if (n + 3 > sizeof pat)
        return false;
    pat[0] = ' ';
    memcpy(pat + 1, w, n);
    pat[n + 1] = prefix ? '\0' : ' ';
    pat[n + 2] = '\0';
    return strstr(norm, pat) != NULL;
}

bool ag_has_any(const char *norm, const char *const *list)
{
    for (; *list; list++)
        if (ag_has(norm, *list))
            return true;
    return false;
}

static bool s_starts_any(const char *norm, const char *const *list)
{
    for (; *list; list++) {
        size_t n = strlen(*list);
        if (strncmp(norm + 1, *list, n) == 0 && norm[n + 1] == ' ')
            return true;
    }
    return false;
}

static const char *const s_greetings[] = {
    "hi", "hii", "hiii", "hello", "helo", "hallo", "hey", "heya", "hiya", "yo", "howdy", "hola",
    "bonjour", "salaam", "salam", "namaste", "ciao", "good morning", "good afternoon",
    "good evening", "gm", "morning", "evening", "marhaba", "sup", "wassup", "whats up",
    "greetings", "hi there", "hello there", "hey there", "assalamu alaikum", NULL };
static const char *const s_thanks[] = {
    "thanks", "thank you", "thank u", "thx", "ty", "tysm", "cheers", "appreciate it",
    "much appreciated", "tnx", "thanx", "shukran", "merci", "gracias", "great thanks", NULL };
static const char *const s_byes[] = {
    "bye", "goodbye", "good bye", "see you", "see ya", "cya", "talk later", "thats all",
    "that is all", "nothing else", "good night", NULL };
static const char *const s_help[] = {
    "help", "what can you do", "how does this work", "menu", "options", "how do i order",
    "how to order", "how can i order", "commands", "what do you do", "who are you", "start", NULL };
static const char *const s_complaints[] = {
    "broken", "broke", "damag*", "defect*", "faulty", "cracked", "crushed", "smashed",
    "shattered", "leak*", "torn", "ripped", "scratched", "dented", "missing", "never arrived",
    "never came", "never received", "never got", "didnt arrive", "did not arrive",
    "hasnt arrived", "wrong item", "wrong size", "wrong colour", "wrong color", "wrong product",
    "wrong order", "not what i ordered", "money back", "complain*", "doesnt work",
    "does not work", "not working", "stopped working", "dont work", "fake", "scam", "terrible",
    "awful", "disappoint*", "unhappy", "poor quality", "bad quality", "expired", "rotten",
    "spoiled", "charged twice", "double charged", "overcharged", "stolen", "incomplete", NULL };
/* "refund" and "return" are complaints only with a request: the bare words
 * are also policy questions ("what is your return policy"). */
static const char *const s_claims[] = {
    "want a refund", "need a refund", "refund please", "refund my", "want to return",
    "need to return", "like to return", "want my money", "want to send it back",
    "want an exchange", "want to exchange", NULL };
static const char *const s_people[] = {
    "human", "humans", "real person", "a person", "representative", "operator", "live agent",
    "an agent", "real agent", "customer service", "customer care", "a manager", "the manager",
    "someone", "somebody", "staff", "person", NULL };
static const char *const s_reach[] = {
    "talk", "speak", "chat", "call", "contact", "connect", "transfer", "get me", "want", "need",
    "put me", "human", "humans", "real person", NULL };
static const char *const s_detail[] = {
    "tell me more", "more about", "tell me about", "details", "detail", "describe",
    "description", "more info", "info", "information", "specs", "what is it", "whats it",
    "what about", "is it good", NULL };
/* Questions about a product's price or stock: details, not a search. */
static const char *const s_detail_questions[] = {
    "how much", "price of", "cost", "costs", "in stock", "available", "availability", NULL };
static const char *const s_questions[] = {
    "which", "what", "whats", "how", "is", "are", "does", "do", "can", "could", NULL };
static const char *const s_order_verbs[] = {
    "take", "buy", "order", "want", "get", "ill have", "add", "need", "purchase", "give me",
    "send me", "id like", "i would like", NULL };
static const char *const s_my_order[] = {
    "my order", "my last order", "the order", "this order", "that order", "my parcel",
    "my package", "my delivery", NULL };
static const char *const s_similar[] = {
    "more like", "similar", "something like", "others like", "like the first", "like that one",
    "like this one", "alternatives", "alternative", "anything like", "like it", NULL };
static const char *const s_add[] = {
    "also", "add", "plus", "as well", "another", NULL };
static const char *const s_ask_sell[] = {
    "do you sell", "do you have", "do you carry", "do you stock", "have you got", "got any",
    "is there", "are there", "you have any", "you sell", NULL };
static const char *const s_status[] = {
    "where is", "wheres", "track*", "status", "when will", "arrive*", "delivered", "shipped",
    "my orders", "my order", NULL };
static const char *const s_shipping[] = {
    "ship", "ships", "shipping", "shipped", "deliver", "delivery", "deliveries", "postage",
    "courier", "dispatch*", NULL };
static const char *const s_returns[] = {
    "return", "returns", "returning", "refund*", "exchange*", "send back", "send it back", NULL };
static const char *const s_warranty[] = { "warrant*", "guarantee*", NULL };
/* Words of a policy question that name no product. */
static const char *const s_topic_stop[] = {
    "ship", "ships", "shipping", "shipped", "deliver", "delivery", "postage", "courier",
    "return", "returns", "refund", "refunds", "exchange", "warranty", "warranties", "guarantee",
    "policy", "policies", "long", "take", "takes", "time", "much", "cost", "costs", "is", "the",
    "on", "for", "of", "about", "what", "whats", "how", "does", "do", "it", "this", "that",
    "there", "any", "your", "you", "can", "i", "a", "an", "and", "or", "get", "have", "has",
    "will", "with", "days", "day", "fast", "free", "back", "send", "come", "comes", "one",
    "period", "covered", "cover", "info", "information", "tell", "me", "more", "to", "in",
    "my", "we", "us", "if", "when", NULL };

static bool s_in(const char *w, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(w, *list) == 0)
            return true;
    return false;
}

/* The product words of a policy question: the query less the words above. */
static void s_topic(const char *query, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = query;
    out[0] = '\0';
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (!n)
            break;
        char w[64];
        if (n < sizeof w) {
            memcpy(w, p, n);
            w[n] = '\0';
            if (!s_in(w, s_topic_stop) && o + n + 2 < cap) {
                if (o)
                    out[o++] = ' ';
                memcpy(out + o, w, n);
                o += n;
                out[o] = '\0';
            }
        }
        p += n;
    }
}

/* Splits "2 mascaras and 1 lipstick, the red one" into items, when at
 * least two pieces each name a quantity or a shown item; else one part. */
static void s_parts(const char *text, ag_read_t *rd)
{
    char buf[NLU_TEXT_MAX + 1];
    ag_copy(buf, sizeof buf, text);
    for (char *p = buf; *p; p++)
        *p = (char) tolower((unsigned char) *p);
    /* separators become '\n': ", " " and " " & " " + " " plus " ";" */
    static const char *const seps[] = { " and ", " & ", " + ", " plus ", ",", ";", NULL };
    for (int i = 0; seps[i]; i++)
        for (char *p = strstr(buf, seps[i]); p; p = strstr(p, seps[i])) {
            size_t n = strlen(seps[i]);
            memset(p, ' ', n);
            *p = '\n';
            p += n;
        }
    ag_part_t parts[AG_LINES_MAX];
    int n = 0, counted = 0;
    for (char *save = NULL, *seg = strtok_r(buf, "\n", &save); seg && n < AG_LINES_MAX;
         seg = strtok_r(NULL, "\n", &save)) {
        nlu_slots_t s;
        if (nlu_extract_slots(seg, &s) != 0)
            continue;
        bool product = s.ref != NLU_REF_NONE || s.query[0];
        if (!product)
            continue;
        parts[n] = (ag_part_t) { .qty = s.quantity, .ref = s.ref, .ref_index = s.ref_index };
        ag_copy(parts[n].query, sizeof parts[n].query, s.query);
        counted += s.quantity > 0 || s.ref != NLU_REF_NONE;
        n++;
    }
    if (n >= 2 && counted >= 2) {
        memcpy(rd->parts, parts, sizeof parts);
        rd->n_parts = n;
        return;
    }
    rd->parts[0] = (ag_part_t) { .qty = rd->slots.quantity, .ref = rd->slots.ref,
                                 .ref_index = rd->slots.ref_index };
    ag_copy(rd->parts[0].query, sizeof rd->parts[0].query, rd->slots.query);
    rd->n_parts = 1;
}

void ag_read(const char *text, ag_read_t *rd)
{
    memset(rd, 0, sizeof *rd);
    if (!text)
        text = "";
    nlu_classify(text, &rd->nlu);
    nlu_extract_slots(text, &rd->slots);
    s_normalize(text, rd->norm, sizeof rd->norm);
    const char *n = rd->norm;

    rd->greeting = s_starts_any(n, s_greetings);
    rd->thanks = ag_has_any(n, s_thanks);
    rd->bye = ag_has_any(n, s_byes);
    rd->help = ag_has_any(n, s_help);
    rd->complaint = ag_has_any(n, s_complaints) || ag_has_any(n, s_claims);
    rd->handoff = ag_has_any(n, s_people) && ag_has_any(n, s_reach);
    rd->question = strchr(text, '?') || s_starts_any(n, s_questions);
    rd->order_verb = ag_has_any(n, s_order_verbs);
    rd->detail = ag_has_any(n, s_detail) || (rd->question && ag_has_any(n, s_detail_questions));
    rd->cancel_words = ag_has(n, "cancel*");
    rd->my_order = ag_has_any(n, s_my_order);
    rd->similar = ag_has_any(n, s_similar);
    rd->add = ag_has_any(n, s_add);
    rd->ask_sell = ag_has_any(n, s_ask_sell);
    rd->status_words = ag_has_any(n, s_status);
    rd->policy = (ag_has_any(n, s_shipping) ? AG_POLICY_SHIPPING : 0)
               | (ag_has_any(n, s_returns) ? AG_POLICY_RETURNS : 0)
               | (ag_has_any(n, s_warranty) ? AG_POLICY_WARRANTY : 0);
    s_topic(rd->slots.query, rd->topic, sizeof rd->topic);
    rd->bare_qty = rd->slots.quantity > 0 && !rd->slots.query[0] && rd->slots.ref == NLU_REF_NONE
                && rd->slots.confirm == NLU_CONFIRM_NONE && !rd->slots.order_id[0];
    s_parts(text, rd);
}
