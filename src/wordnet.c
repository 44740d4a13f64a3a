/* wordnet: lemma -> synsets -> hypernyms over the mapped wndb(5) files.
 *
 * index.<pos> lines ("lemma pos synset_cnt p_cnt [ptr...] sense_cnt
 * tagsense_cnt offset...") are sorted by lemma; the licence header lines
 * start with a space and are skipped. A synset offset is the byte offset of
 * its line in data.<pos>. <pos>.exc lists irregular forms ("mice mouse"). */
#include "wordnet.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "souk/error.h"

typedef struct {
    const char *base;
    size_t size;
    uint32_t *lines;          /* offsets of the sorted lines (index and exc files) */
    size_t n_lines;
} wn_file_t;

struct wordnet_s {
    wn_file_t index[WORDNET_POS_COUNT];
    wn_file_t data[WORDNET_POS_COUNT];
    wn_file_t exc[WORDNET_POS_COUNT];
    char identity[128];
};

static const char *const s_pos_name[WORDNET_POS_COUNT] = { "noun", "verb", "adj" };

static int s_map(const char *path, wn_file_t *f)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SOUK_ENOTFOUND;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size <= 0) {
        close(fd);
        return SOUK_EIO;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return SOUK_EIO;
    f->base = p;
    f->size = (size_t)st.st_size;
    return SOUK_OK;
}

/* Records where each line starts, skipping the licence lines (leading space). */
static int s_index_lines(wn_file_t *f)
{
    size_t cap = 1024, n = 0;
    uint32_t *lines = malloc(cap * sizeof *lines);
    if (!lines)
        return SOUK_ENOMEM;
    for (size_t at = 0; at < f->size;) {
        const char *nl = memchr(f->base + at, '\n', f->size - at);
        size_t end = nl ? (size_t)(nl - f->base) : f->size;
        if (end > at && f->base[at] != ' ') {
            if (n == cap) {
                uint32_t *grown = realloc(lines, 2 * cap * sizeof *lines);
                if (!grown) {
                    free(lines);
                    return SOUK_ENOMEM;
                }
                lines = grown;
                cap *= 2;
            }
            lines[n++] = (uint32_t)at;
        }
        at = end + 1;
    }
    f->lines = lines;
    f->n_lines = n;
    return SOUK_OK;
}

static void s_unmap(wn_file_t *f)
{
    if (f->base)
        munmap((void *)f->base, f->size);
    free(f->lines);
    memset(f, 0, sizeof *f);
}

int wordnet_open(const char *dir, wordnet_t **out)
{
    if (!dir || !out)
        return SOUK_EINVAL;
    wordnet_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    int rc = SOUK_OK;
    char path[4096];
    for (int p = 0; p < WORDNET_POS_COUNT && rc == SOUK_OK; p++) {
        snprintf(path, sizeof path, "%s/index.%s", dir, s_pos_name[p]);
        rc = s_map(path, &self->index[p]);
        if (rc == SOUK_OK)
            rc = s_index_lines(&self->index[p]);
        if (rc == SOUK_OK) {
            snprintf(path, sizeof path, "%s/data.%s", dir, s_pos_name[p]);
            rc = s_map(path, &self->data[p]);
        }
        if (rc == SOUK_OK) {
            snprintf(path, sizeof path, "%s/%s.exc", dir, s_pos_name[p]);
            rc = s_map(path, &self->exc[p]);
        }
        if (rc == SOUK_OK)
            rc = s_index_lines(&self->exc[p]);
    }
    if (rc != SOUK_OK) {
        wordnet_close(&self);
        return rc;
    }
    snprintf(self->identity, sizeof self->identity, "wn:%zu/%zu/%zu",
             self->data[WORDNET_NOUN].size, self->data[WORDNET_VERB].size,
             self->data[WORDNET_ADJ].size);
    *out = self;
    return SOUK_OK;
}

void wordnet_close(wordnet_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    wordnet_t *self = *self_p;
    for (int p = 0; p < WORDNET_POS_COUNT; p++) {
        s_unmap(&self->index[p]);
        s_unmap(&self->data[p]);
        s_unmap(&self->exc[p]);
    }
    free(self);
    *self_p = NULL;
}

const char *wordnet_identity(const wordnet_t *self)
{
    return self->identity;
}

/* The line of f whose first token is key, as [*start, *end); 0 if none. */
static int s_find_line(const wn_file_t *f, const char *key, size_t len, const char **start,
                       const char **end)
{
    size_t lo = 0, hi = f->n_lines;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *line = f->base + f->lines[mid];
        size_t room = f->size - f->lines[mid];
        const char *sp = memchr(line, ' ', room);
        size_t tlen = sp ? (size_t)(sp - line) : room;
        int c = memcmp(key, line, len < tlen ? len : tlen);
        if (c == 0)
            c = len < tlen ? -1 : len > tlen ? 1 : 0;
        if (c == 0) {
            const char *nl = memchr(line, '\n', room);
            *start = line;
            *end = nl ? nl : line + room;
            return 1;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

/* Next space-separated token in [*p, end); 0 at the end. */
static int s_token(const char **p, const char *end, const char **tok, size_t *len)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    if (s >= end)
        return 0;
    const char *e = s;
    while (e < end && *e != ' ')
        e++;
    *tok = s;
    *len = (size_t)(e - s);
    *p = e;
    return 1;
}

static long s_number(const char *tok, size_t len, int base)
{
    char buf[16];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, tok, len);
    buf[len] = '\0';
    char *endp;
    long v = strtol(buf, &endp, base);
    return *endp ? -1 : v;
}

int wordnet_senses(const wordnet_t *self, wordnet_pos_t pos, const char *lemma, size_t len,
                   uint32_t *offsets, int max)
{
    const char *p, *end, *tok;
    size_t tlen;
    if (pos >= WORDNET_POS_COUNT || !s_find_line(&self->index[pos], lemma, len, &p, &end))
        return 0;
    long f[4];                 /* lemma pos synset_cnt p_cnt */
    for (int i = 0; i < 4; i++) {
        if (!s_token(&p, end, &tok, &tlen))
            return 0;
        f[i] = i >= 2 ? s_number(tok, tlen, 10) : 0;
    }
    long synsets = f[2], ptrs = f[3];
    if (synsets < 0 || ptrs < 0)
        return 0;
    for (long i = 0; i < ptrs + 2; i++)        /* pointer symbols, sense_cnt, tagsense_cnt */
        if (!s_token(&p, end, &tok, &tlen))
            return 0;
    int n = 0;
    for (long i = 0; i < synsets && n < max && s_token(&p, end, &tok, &tlen); i++) {
        long off = s_number(tok, tlen, 10);
        if (off >= 0 && (size_t)off < self->data[pos].size)
            offsets[n++] = (uint32_t)off;
    }
    return n;
}

int wordnet_hypernyms(const wordnet_t *self, wordnet_pos_t pos, uint32_t offset, uint32_t *out,
                      int max)
{
    if (pos >= WORDNET_POS_COUNT || offset >= self->data[pos].size)
        return 0;
    const wn_file_t *f = &self->data[pos];
    const char *p = f->base + offset;
    const char *nl = memchr(p, '\n', f->size - offset);
    const char *end = nl ? nl : f->base + f->size;
    const char *tok;
    size_t tlen;
    long head[4];              /* offset lex_filenum ss_type w_cnt(hex) */
    for (int i = 0; i < 4; i++) {
        if (!s_token(&p, end, &tok, &tlen))
            return 0;
        head[i] = i == 0 ? s_number(tok, tlen, 10) : i == 3 ? s_number(tok, tlen, 16) : 0;
    }
    if (head[0] != (long)offset || head[3] < 0)
        return 0;
    for (long i = 0; i < 2 * head[3]; i++)     /* word lex_id pairs */
        if (!s_token(&p, end, &tok, &tlen))
            return 0;
    if (!s_token(&p, end, &tok, &tlen))
        return 0;
    long ptrs = s_number(tok, tlen, 10);
    int n = 0;
    for (long i = 0; i < ptrs && n < max; i++) {
        const char *sym, *off, *ps, *st;
        size_t symlen, offlen, pslen, stlen;
        if (!s_token(&p, end, &sym, &symlen) || !s_token(&p, end, &off, &offlen) ||
            !s_token(&p, end, &ps, &pslen) || !s_token(&p, end, &st, &stlen))
            break;
        if (sym[0] != '@')
            continue;
        long o = s_number(off, offlen, 10);
        if (o >= 0 && (size_t)o < f->size)
            out[n++] = (uint32_t)o;
    }
    return n;
}

typedef struct {
    const char *suffix, *ending;
} wn_rule_t;

static const wn_rule_t s_noun_rules[] = {
    { "s", "" }, { "ses", "s" }, { "xes", "x" }, { "zes", "z" }, { "ches", "ch" },
    { "shes", "sh" }, { "men", "man" }, { "ies", "y" }, { NULL, NULL } };
static const wn_rule_t s_verb_rules[] = {
    { "s", "" }, { "ies", "y" }, { "es", "e" }, { "es", "" }, { "ed", "e" }, { "ed", "" },
    { "ing", "e" }, { "ing", "" }, { NULL, NULL } };
static const wn_rule_t s_adj_rules[] = {
    { "er", "" }, { "est", "" }, { "er", "e" }, { "est", "e" }, { NULL, NULL } };
static const wn_rule_t *const s_rules[WORDNET_POS_COUNT] = { s_noun_rules, s_verb_rules,
                                                              s_adj_rules };

/* Appends form to buf unless it is there already or not a lemma of pos. */
static int s_add_form(const wordnet_t *self, wordnet_pos_t pos, const char *form, size_t len,
                      char *buf, size_t buflen, size_t *used, int n)
{
    const char *s = buf;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(s);
        if (l == len && memcmp(s, form, len) == 0)
            return n;
        s += l + 1;
    }
    const char *a, *b;
    if (len == 0 || *used + len + 1 > buflen || !s_find_line(&self->index[pos], form, len, &a, &b))
        return n;
    memcpy(buf + *used, form, len);
    buf[*used + len] = '\0';
    *used += len + 1;
    return n + 1;
}

int wordnet_base_forms(const wordnet_t *self, wordnet_pos_t pos, const char *word, size_t len,
                       char *buf, size_t buflen)
{
    if (pos >= WORDNET_POS_COUNT || len == 0 || len > 64)
        return 0;
    size_t used = 0;
    int n = 0;
    const char *p, *end, *tok;
    size_t tlen;
    if (s_find_line(&self->exc[pos], word, len, &p, &end)) {
        s_token(&p, end, &tok, &tlen);                    /* the inflected form itself */
        while (s_token(&p, end, &tok, &tlen))
            n = s_add_form(self, pos, tok, tlen, buf, buflen, &used, n);
    }
    n = s_add_form(self, pos, word, len, buf, buflen, &used, n);
    char form[80];
    for (const wn_rule_t *r = s_rules[pos]; r->suffix; r++) {
        size_t sl = strlen(r->suffix), el = strlen(r->ending);
        if (len <= sl || memcmp(word + len - sl, r->suffix, sl) != 0)
            continue;
        memcpy(form, word, len - sl);
        memcpy(form + len - sl, r->ending, el);
        n = s_add_form(self, pos, form, len - sl + el, buf, buflen, &used, n);
    }
    return n;
}
