/* vindex_writer: builds products.vindex beside the old one and swaps it in.
 *
 * Vectors are quantized and streamed to the temporary file as they come (a
 * million products at 256 dimensions is 256 MB that need not sit in memory);
 * the per-product metadata and strings are kept in memory and written after
 * them on commit, then the header, then fsync + rename + directory fsync. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "souk/error.h"
#include "souk/vindex.h"
#include "vindex_format.h"

#define WBUF_SIZE (1u << 20)

typedef struct {
    uint64_t hash;             /* 0: empty */
    uint32_t str_off, value;
    uint8_t kind;
} intern_t;

enum { INTERN_CURRENCY, INTERN_CATEGORY, INTERN_BRAND };

struct vindex_writer_s {
    char *path, *tmp;
    int fd;
    uint64_t pos;              /* bytes written to fd so far */
    embed_id_t id;
    uint32_t dim_padded;
    uint8_t *wbuf;
    size_t wlen;
    vix_hash_t body_hash;      /* of every byte written after the header */
    int8_t *row;
    size_t count, cap;
    float *scale;
    int64_t *price;
    uint8_t *flags;
    uint16_t *cat, *brand;
    uint32_t *sku, *name, *cur;
    char *strings;
    size_t slen, scap;
    intern_t *itab;
    size_t icap, in;
    uint32_t *names[2];        /* category and brand name offsets, by id */
    size_t n_names[2], cap_names[2];
    const char *terms;         /* borrowed, see vindex_writer_set_terms */
    const uint32_t *term_str, *term_off, *postings;
    size_t terms_len, n_terms, n_postings;
    char *words;               /* sorted NUL-terminated words */
    size_t words_len;
    float *centroids;          /* [category][dim] sums, normalized on commit */
    size_t centroids_cap;      /* categories */
    uint8_t *state;
    size_t state_len;
    int io_error;              /* errno of a failed write */
};

static void s_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
}

static int s_write_all(vindex_writer_t *w, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (w->pos >= VIX_HEADER_SIZE)
        vix_hash_update(&w->body_hash, data, len);
    while (len) {
        ssize_t r = write(w->fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            w->io_error = r < 0 ? errno : EIO;
            return SOUK_EIO;
        }
        p += r;
        len -= (size_t)r;
        w->pos += (uint64_t)r;
    }
    return SOUK_OK;
}

static int s_flush(vindex_writer_t *w)
{
    int rc = s_write_all(w, w->wbuf, w->wlen);
    w->wlen = 0;
    return rc;
}

int vindex_writer_new(const char *path, const embed_id_t *embedder, vindex_writer_t **out,
                      char *err, size_t errlen)
{
    if (!path || !*path || !embedder || !out || embedder->dim < 1 || embedder->dim > EMBED_DIM_MAX)
        return SOUK_EINVAL;
    vindex_writer_t *w = calloc(1, sizeof *w);
    if (!w)
        return SOUK_ENOMEM;
    w->fd = -1;
    w->id = *embedder;
    w->dim_padded = (uint32_t)((embedder->dim + VIX_ROW_ALIGN - 1) / VIX_ROW_ALIGN * VIX_ROW_ALIGN);
    w->path = strdup(path);
    w->wbuf = malloc(WBUF_SIZE);
    w->row = calloc(1, w->dim_padded);
    size_t tlen = strlen(path) + 32;
    w->tmp = malloc(tlen);
    if (!w->path || !w->wbuf || !w->row || !w->tmp) {
        free(w->tmp);
        w->tmp = NULL;                 /* nothing created yet */
        vindex_writer_abort(&w);
        return SOUK_ENOMEM;
    }
    snprintf(w->tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    unlink(w->tmp);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        s_err(err, errlen, "vindex: cannot create %s: %s", w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL;
        vindex_writer_abort(&w);
        return SOUK_EIO;
    }
    static const uint8_t zero[VIX_HEADER_SIZE];
    if (s_write_all(w, zero, sizeof zero) != SOUK_OK) {
        s_err(err, errlen, "vindex: cannot write %s: %s", path, strerror(w->io_error));
        vindex_writer_abort(&w);
        return SOUK_EIO;
    }
    vix_hash_init(&w->body_hash, VIX_BODY_SEED);
    *out = w;
    return SOUK_OK;
}

int vindex_writer_set_state(vindex_writer_t *w, const uint8_t *blob, size_t len)
{
    if (!w || (len && !blob))
        return SOUK_EINVAL;
    uint8_t *copy = len ? malloc(len) : NULL;
    if (len && !copy)
        return SOUK_ENOMEM;
    if (len)
        memcpy(copy, blob, len);
    free(w->state);
    w->state = copy;
    w->state_len = len;
    return SOUK_OK;
}

int vindex_writer_set_words(vindex_writer_t *w, const char *words, size_t len)
{
    if (!w || (len && (!words || words[len - 1] != '\0')))
        return SOUK_EINVAL;
    char *copy = len ? malloc(len) : NULL;
    if (len && !copy)
        return SOUK_ENOMEM;
    if (len)
        memcpy(copy, words, len);
    free(w->words);
    w->words = copy;
    w->words_len = len;
    return SOUK_OK;
}

int vindex_writer_set_terms(vindex_writer_t *w, const char *terms, size_t terms_len,
                            const uint32_t *str_off, const uint32_t *term_off, size_t n_terms,
                            const uint32_t *postings, size_t n_postings)
{
    if (!w || n_terms > UINT32_MAX - 1 || n_postings > UINT32_MAX ||
        (n_terms && (!terms || !str_off || !term_off || !terms_len)) ||
        (n_postings && !postings))
        return SOUK_EINVAL;
    w->terms = terms;
    w->terms_len = terms_len;
    w->term_str = str_off;
    w->term_off = term_off;
    w->n_terms = n_terms;
    w->postings = postings;
    w->n_postings = n_postings;
    return SOUK_OK;
}

static int s_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return SOUK_OK;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return SOUK_ENOMEM;
    *p = q;
    *cap = c;
    return SOUK_OK;
}

static int s_string(vindex_writer_t *w, const char *s, uint32_t *off)
{
    size_t len = strlen(s) + 1;
    if (w->slen + len > UINT32_MAX)
        return SOUK_ETOOBIG;
    if (s_grow((void **)&w->strings, &w->scap, w->slen + len, 1) != SOUK_OK)
        return SOUK_ENOMEM;
    memcpy(w->strings + w->slen, s, len);
    *off = (uint32_t)w->slen;
    w->slen += len;
    return SOUK_OK;
}

static uint64_t s_text_hash(uint8_t kind, const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ kind;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h | 1;
}

/* Currency: *value = string offset. Category and brand: *value = id, or
 * VINDEX_NO_ID once 65535 distinct ones are taken. */
static int s_intern(vindex_writer_t *w, uint8_t kind, const char *s, uint32_t *value)
{
    if ((w->in + 1) * 2 > w->icap) {
        size_t cap = w->icap ? 2 * w->icap : 1024;
        intern_t *t = calloc(cap, sizeof *t);
        if (!t)
            return SOUK_ENOMEM;
        for (size_t i = 0; i < w->icap; i++) {
            if (!w->itab[i].hash)
                continue;
            size_t j = w->itab[i].hash & (cap - 1);
            while (t[j].hash)
                j = (j + 1) & (cap - 1);
            t[j] = w->itab[i];
        }
        free(w->itab);
        w->itab = t;
        w->icap = cap;
    }
    uint64_t h = s_text_hash(kind, s);
    size_t j = h & (w->icap - 1);
    for (; w->itab[j].hash; j = (j + 1) & (w->icap - 1)) {
        intern_t *e = &w->itab[j];
        if (e->hash == h && e->kind == kind && strcmp(w->strings + e->str_off, s) == 0) {
            *value = e->value;
            return SOUK_OK;
        }
    }
    intern_t e = { .hash = h, .kind = kind };
    int rc = s_string(w, s, &e.str_off);
    if (rc != SOUK_OK)
        return rc;
    e.value = e.str_off;
    if (kind != INTERN_CURRENCY) {
        int k = kind - INTERN_CATEGORY;
        if (w->n_names[k] >= VINDEX_NO_ID) {
            *value = VINDEX_NO_ID;
            return SOUK_OK;
        }
        if (s_grow((void **)&w->names[k], &w->cap_names[k], w->n_names[k] + 1,
                   sizeof *w->names[k]) != SOUK_OK)
            return SOUK_ENOMEM;
        w->names[k][w->n_names[k]] = e.str_off;
        e.value = (uint32_t)w->n_names[k]++;
    }
    w->itab[j] = e;
    w->in++;
    *value = e.value;
    return SOUK_OK;
}

static int s_grow_rows(vindex_writer_t *w)
{
    if (w->count < w->cap)
        return SOUK_OK;
    size_t cap = w->cap ? 2 * w->cap : 1024;
#define GROW(field)                                                          \
    do {                                                                     \
        void *q = realloc(w->field, cap * sizeof *w->field);                 \
        if (!q)                                                              \
            return SOUK_ENOMEM;                                              \
        w->field = q;                                                        \
    } while (0)
    GROW(scale);
    GROW(price);
    GROW(flags);
    GROW(cat);
    GROW(brand);
    GROW(sku);
    GROW(name);
    GROW(cur);
#undef GROW
    w->cap = cap;
    return SOUK_OK;
}

/* Quantizes vec into w->row; returns the scale (0 for a zero vector). */
static float s_quantize(vindex_writer_t *w, const float *vec)
{
    float max = 0;
    for (int d = 0; d < w->id.dim; d++)
        max = fabsf(vec[d]) > max ? fabsf(vec[d]) : max;
    memset(w->row, 0, w->dim_padded);
    if (max == 0)
        return 0;
    float inv = 127.0f / max;
    for (int d = 0; d < w->id.dim; d++)
        w->row[d] = (int8_t)lrintf(vec[d] * inv);
    return max / 127.0f;
}

int vindex_writer_add(vindex_writer_t *w, const vindex_item_t *item, const float *vec)
{
    if (!w || !item || !vec || !item->sku || !*item->sku || !item->name || item->price_cents < 0)
        return SOUK_EINVAL;
    for (int d = 0; d < w->id.dim; d++)
        if (!isfinite(vec[d]))
            return SOUK_EINVAL;
    if (w->count >= UINT32_MAX - 1)
        return SOUK_ETOOBIG;
    int rc = s_grow_rows(w);
    size_t i = w->count;
    uint32_t cat = VINDEX_NO_ID, brand = VINDEX_NO_ID, cur;
    if (rc == SOUK_OK)
        rc = s_string(w, item->sku, &w->sku[i]);
    if (rc == SOUK_OK)
        rc = s_string(w, item->name, &w->name[i]);
    if (rc == SOUK_OK)
        rc = s_intern(w, INTERN_CURRENCY, item->currency ? item->currency : "", &cur);
    if (rc == SOUK_OK && item->category && *item->category)
        rc = s_intern(w, INTERN_CATEGORY, item->category, &cat);
    if (rc == SOUK_OK && item->brand && *item->brand)
        rc = s_intern(w, INTERN_BRAND, item->brand, &brand);
    if (rc != SOUK_OK)
        return rc;
    if (cat != VINDEX_NO_ID) {
        if (cat >= w->centroids_cap) {
            size_t cap = w->centroids_cap ? 2 * w->centroids_cap : 64;
            float *c = realloc(w->centroids, cap * (size_t)w->id.dim * sizeof *c);
            if (!c)
                return SOUK_ENOMEM;
            memset(c + w->centroids_cap * (size_t)w->id.dim, 0,
                   (cap - w->centroids_cap) * (size_t)w->id.dim * sizeof *c);
            w->centroids = c;
            w->centroids_cap = cap;
        }
        float *c = w->centroids + (size_t)cat * (size_t)w->id.dim;
        for (int d = 0; d < w->id.dim; d++)
            c[d] += vec[d];
    }
    w->scale[i] = s_quantize(w, vec);
    if (w->wlen + w->dim_padded > WBUF_SIZE && s_flush(w) != SOUK_OK)
        return SOUK_EIO;
    memcpy(w->wbuf + w->wlen, w->row, w->dim_padded);
    w->wlen += w->dim_padded;
    w->cur[i] = cur;
    w->cat[i] = (uint16_t)cat;
    w->brand[i] = (uint16_t)brand;
    w->price[i] = item->price_cents;
    w->flags[i] = item->stock > 0 ? VIX_FLAG_IN_STOCK : 0;
    w->count++;
    return SOUK_OK;
}

size_t vindex_writer_count(const vindex_writer_t *w)
{
    return w ? w->count : 0;
}

static int s_cmp_sku(const void *a, const void *b, void *arg)
{
    const vindex_writer_t *w = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return strcasecmp(w->strings + w->sku[x], w->strings + w->sku[y]);
}

/* Pads to VIX_ALIGN, writes a section, records it in hd. */
static int s_section(vindex_writer_t *w, vix_header_t *hd, int sec, const void *data, size_t len)
{
    static const uint8_t zero[VIX_ALIGN];
    size_t pad = (size_t)((VIX_ALIGN - w->pos % VIX_ALIGN) % VIX_ALIGN);
    if (pad && s_write_all(w, zero, pad) != SOUK_OK)
        return SOUK_EIO;
    hd->sec[sec].off = w->pos;
    hd->sec[sec].len = len;
    return len ? s_write_all(w, data, len) : SOUK_OK;
}

static uint64_t s_previous_generation(const char *path)
{
    vix_header_t old;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t r = pread(fd, &old, sizeof old, 0);
    close(fd);
    if (r != (ssize_t)sizeof old || memcmp(old.magic, VIX_MAGIC, 8) != 0)
        return 0;
    return old.generation;
}

static void s_fill_header(vindex_writer_t *w, vix_header_t *hd)
{
    memcpy(hd->magic, VIX_MAGIC, 8);
    hd->version = VIX_VERSION;
    hd->endian = VIX_ENDIAN;
    hd->header_size = VIX_HEADER_SIZE;
    hd->file_size = w->pos;
    hd->generation = s_previous_generation(w->path) + 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hd->created_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    hd->count = w->count;
    hd->dim = (uint32_t)w->id.dim;
    hd->dim_padded = w->dim_padded;
    hd->n_categories = (uint32_t)w->n_names[0];
    hd->n_brands = (uint32_t)w->n_names[1];
    hd->n_terms = (uint32_t)w->n_terms;
    memcpy(hd->embedder, w->id.name, sizeof hd->embedder);
    hd->embedder[sizeof hd->embedder - 1] = '\0';
    hd->params_hash = w->id.params_hash;
    hd->body_hash = vix_hash_final(&w->body_hash);
    hd->header_hash = vix_header_hash(hd);
}

static int s_write_rest(vindex_writer_t *w, vix_header_t *hd)
{
    uint32_t *order = malloc((w->count ? w->count : 1) * sizeof *order);
    if (!order)
        return SOUK_ENOMEM;
    for (size_t i = 0; i < w->count; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, w->count, sizeof *order, s_cmp_sku, w);
    if (w->slen == 0 || w->strings[w->slen - 1] != '\0') {
        uint32_t off;
        if (s_string(w, "", &off) != SOUK_OK) {
            free(order);
            return SOUK_ENOMEM;
        }
    }
    for (size_t c = 0; c < w->n_names[0]; c++) {
        float *v = w->centroids + c * (size_t)w->id.dim;
        double norm = 0;
        for (int d = 0; d < w->id.dim; d++)
            norm += (double)v[d] * v[d];
        for (int d = 0; norm > 0 && d < w->id.dim; d++)
            v[d] = (float)(v[d] / sqrt(norm));
    }
    int rc = s_flush(w);
    hd->sec[VIX_SEC_VEC].off = VIX_HEADER_SIZE;
    hd->sec[VIX_SEC_VEC].len = w->count * w->dim_padded;
    const struct {
        int sec;
        const void *data;
        size_t len;
    } secs[] = {
        { VIX_SEC_SCALE, w->scale, w->count * sizeof *w->scale },
        { VIX_SEC_PRICE, w->price, w->count * sizeof *w->price },
        { VIX_SEC_FLAGS, w->flags, w->count * sizeof *w->flags },
        { VIX_SEC_CAT, w->cat, w->count * sizeof *w->cat },
        { VIX_SEC_BRAND, w->brand, w->count * sizeof *w->brand },
        { VIX_SEC_SKU, w->sku, w->count * sizeof *w->sku },
        { VIX_SEC_NAME, w->name, w->count * sizeof *w->name },
        { VIX_SEC_CUR, w->cur, w->count * sizeof *w->cur },
        { VIX_SEC_SKU_ORDER, order, w->count * sizeof *order },
        { VIX_SEC_CAT_NAMES, w->names[0], w->n_names[0] * sizeof *w->names[0] },
        { VIX_SEC_BRAND_NAMES, w->names[1], w->n_names[1] * sizeof *w->names[1] },
        { VIX_SEC_CENTROIDS, w->centroids, w->n_names[0] * (size_t)w->id.dim * sizeof(float) },
        { VIX_SEC_WORDS, w->words, w->words_len },
        { VIX_SEC_TERMS, w->terms, w->n_terms ? w->terms_len : 0 },
        { VIX_SEC_TERM_STR, w->term_str, w->n_terms * sizeof *w->term_str },
        { VIX_SEC_TERM_OFF, w->term_off, w->n_terms ? (w->n_terms + 1) * sizeof *w->term_off : 0 },
        { VIX_SEC_POSTINGS, w->postings, w->n_terms ? w->n_postings * sizeof *w->postings : 0 },
        { VIX_SEC_STRINGS, w->strings, w->slen },
        { VIX_SEC_STATE, w->state, w->state_len },
    };
    for (size_t s = 0; s < sizeof secs / sizeof secs[0] && rc == SOUK_OK; s++)
        rc = s_section(w, hd, secs[s].sec, secs[s].data, secs[s].len);
    free(order);
    if (rc != SOUK_OK)
        return rc;
    s_fill_header(w, hd);
    if (pwrite(w->fd, hd, sizeof *hd, 0) != (ssize_t)sizeof *hd) {
        w->io_error = errno ? errno : EIO;
        return SOUK_EIO;
    }
    return SOUK_OK;
}

static void s_free(vindex_writer_t *w)
{
    if (w->fd >= 0)
        close(w->fd);
    free(w->path);
    free(w->tmp);
    free(w->wbuf);
    free(w->row);
    free(w->scale);
    free(w->price);
    free(w->flags);
    free(w->cat);
    free(w->brand);
    free(w->sku);
    free(w->name);
    free(w->cur);
    free(w->strings);
    free(w->itab);
    free(w->names[0]);
    free(w->names[1]);
    free(w->centroids);
    free(w->words);
    free(w->state);
    free(w);
}

static void s_fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int vindex_writer_commit(vindex_writer_t **self_p, char *err, size_t errlen)
{
    if (!self_p || !*self_p)
        return SOUK_EINVAL;
    vindex_writer_t *w = *self_p;
    vix_header_t hd;
    memset(&hd, 0, sizeof hd);
    int rc = s_write_rest(w, &hd);
    if (rc == SOUK_OK && fsync(w->fd) != 0) {
        w->io_error = errno;
        rc = SOUK_EIO;
    }
    if (rc == SOUK_OK && close(w->fd) != 0) {
        w->io_error = errno;
        rc = SOUK_EIO;
    }
    if (rc == SOUK_OK)
        w->fd = -1;
    if (rc == SOUK_OK && rename(w->tmp, w->path) != 0) {
        w->io_error = errno;
        rc = SOUK_EIO;
    }
    if (rc != SOUK_OK) {
        if (rc == SOUK_EIO)
            s_err(err, errlen, "vindex: cannot write %s: %s", w->path, strerror(w->io_error));
        else
            s_err(err, errlen, "vindex: cannot write %s: %s", w->path, souk_strerror(rc));
        vindex_writer_abort(self_p);
        return rc;
    }
    s_fsync_dir(w->path);
    s_free(w);
    *self_p = NULL;
    return SOUK_OK;
}

void vindex_writer_abort(vindex_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vindex_writer_t *w = *self_p;
    if (w->tmp)
        unlink(w->tmp);
    s_free(w);
    *self_p = NULL;
}
