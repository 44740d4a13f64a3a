/* vindex: maps products.vindex, verifies it, answers top-k queries.
 *
 * The scan: the query is quantized to int16 once, each product's int8 row is
 * multiplied with it (AVX2 when the CPU has it, chosen at run time), and the
 * products that pass the filters compete in a min-heap of size k. The rows
 * are read in file order, so the hardware prefetcher keeps the scan at
 * memory speed; a filter skips rows without touching them. */
#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "souk/error.h"
#include "souk/vindex.h"
#include "vindex_format.h"

#define QUERY_MAX 8191             /* int16 query range: sums stay in int32 lanes */

typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_sig_t;

typedef struct {
    uint8_t *base;
    size_t size;
    const vix_header_t *hd;
    file_sig_t sig;
    const int8_t *vec;
    const float *scale;
    const int64_t *price;
    const uint8_t *flags;
    const uint16_t *cat, *brand;
    const uint32_t *sku, *name, *cur, *sku_order, *cat_names, *brand_names;
    const float *centroids;
    const char *words;
    size_t words_len;
    const char *terms;
    size_t terms_len;
    const uint32_t *term_str, *term_off, *postings;
    size_t n_postings;
    const char *strings;
    size_t strings_len;
    const uint8_t *state;
    size_t state_len;
} vix_map_t;

struct vindex_s {
    char *path;
    vix_map_t *map;            /* NULL: no file mapped yet */
    file_sig_t failed;         /* a file that did not verify: not retried until it changes */
    bool have_failed;
    int16_t *q16;              /* query scratch */
    size_t q16_cap;
};

static int s_fail(char *err, size_t errlen, int rc, const char *path, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", path, why);
    return rc;
}

static bool s_sig_equal(const file_sig_t *a, const file_sig_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static file_sig_t s_sig(const struct stat *st)
{
    return (file_sig_t){ st->st_dev, st->st_ino, st->st_size, st->st_mtim };
}

static void s_unmap(vix_map_t **mp)
{
    if (!*mp)
        return;
    munmap((*mp)->base, (*mp)->size);
    free(*mp);
    *mp = NULL;
}

/* ---- verification: nothing in the file is trusted before this ------------- */

static const char *s_check_layout(const vix_header_t *hd, size_t size)
{
    if (memcmp(hd->magic, VIX_MAGIC, 8) != 0)
        return "not a souk product index (bad magic)";
    if (hd->endian != VIX_ENDIAN)
        return "index written on a machine of another byte order";
    if (hd->version != VIX_VERSION)
        return "index format version not supported; rebuild it with souk import";
    if (vix_header_hash(hd) != hd->header_hash)
        return "index header corrupt (checksum mismatch)";
    if (hd->header_size != VIX_HEADER_SIZE)
        return "index header size wrong";
    for (size_t i = sizeof *hd; i < VIX_HEADER_SIZE; i++)
        if (((const uint8_t *)hd)[i])
            return "index header corrupt (reserved bytes set)";
    if (hd->file_size != size)
        return hd->file_size > size ? "index truncated (shorter than its header says)"
                                    : "index has trailing bytes (longer than its header says)";
    if (hd->dim < 1 || hd->dim > EMBED_DIM_MAX || hd->dim_padded < hd->dim ||
        hd->dim_padded % VIX_ROW_ALIGN || hd->dim_padded > EMBED_DIM_MAX + VIX_ROW_ALIGN)
        return "index dimension invalid";
    if (hd->count >= UINT32_MAX || hd->n_categories > VINDEX_NO_ID || hd->n_brands > VINDEX_NO_ID)
        return "index counts invalid";
    if (memchr(hd->embedder, '\0', sizeof hd->embedder) == NULL)
        return "index embedder name invalid";
    uint64_t n = hd->count;
    const uint64_t expect[VIX_SEC_COUNT] = {
        [VIX_SEC_VEC] = n * hd->dim_padded, [VIX_SEC_SCALE] = n * 4, [VIX_SEC_PRICE] = n * 8,
        [VIX_SEC_FLAGS] = n, [VIX_SEC_CAT] = n * 2, [VIX_SEC_BRAND] = n * 2,
        [VIX_SEC_SKU] = n * 4, [VIX_SEC_NAME] = n * 4, [VIX_SEC_CUR] = n * 4,
        [VIX_SEC_SKU_ORDER] = n * 4, [VIX_SEC_CAT_NAMES] = (uint64_t)hd->n_categories * 4,
        [VIX_SEC_BRAND_NAMES] = (uint64_t)hd->n_brands * 4,
        [VIX_SEC_CENTROIDS] = (uint64_t)hd->n_categories * hd->dim * 4,
        [VIX_SEC_TERM_STR] = (uint64_t)hd->n_terms * 4,
        [VIX_SEC_TERM_OFF] = hd->n_terms ? ((uint64_t)hd->n_terms + 1) * 4 : 0,
    };
    for (int s = 0; s < VIX_SEC_COUNT; s++) {
        uint64_t off = hd->sec[s].off, len = hd->sec[s].len;
        if (off < VIX_HEADER_SIZE || off % 8 || off > size || len > size - off)
            return "index section out of bounds";
        bool free_size = s == VIX_SEC_STRINGS || s == VIX_SEC_STATE || s == VIX_SEC_WORDS ||
                         s == VIX_SEC_TERMS || s == VIX_SEC_POSTINGS;
        if (!free_size && len != expect[s])
            return "index section size does not match the product count";
    }
    if (hd->sec[VIX_SEC_VEC].off % VIX_ROW_ALIGN)
        return "index vectors misaligned";
    if (hd->sec[VIX_SEC_STRINGS].len == 0)
        return "index string table empty";
    if (hd->sec[VIX_SEC_POSTINGS].len % 4 || (hd->n_terms && !hd->sec[VIX_SEC_TERMS].len))
        return "index term table malformed";
    return NULL;
}

static const char *s_check_body(const vix_map_t *m)
{
    const vix_header_t *hd = m->hd;
    if (vix_hash(m->base + VIX_HEADER_SIZE, m->size - VIX_HEADER_SIZE, VIX_BODY_SEED) !=
        hd->body_hash)
        return "index corrupt (checksum mismatch); rebuild it with souk import";
    if (m->strings[m->strings_len - 1] != '\0' ||
        (m->words_len && m->words[m->words_len - 1] != '\0'))
        return "index string table not terminated";
    for (uint64_t i = 0; i < hd->count; i++) {
        if (m->sku[i] >= m->strings_len || m->name[i] >= m->strings_len ||
            m->cur[i] >= m->strings_len || m->sku_order[i] >= hd->count)
            return "index string offset out of range";
        if ((m->cat[i] != VINDEX_NO_ID && m->cat[i] >= hd->n_categories) ||
            (m->brand[i] != VINDEX_NO_ID && m->brand[i] >= hd->n_brands))
            return "index category or brand id out of range";
    }
    if (hd->n_terms) {
        if (m->terms[m->terms_len - 1] != '\0' || m->term_off[0] != 0 ||
            m->term_off[hd->n_terms] != m->n_postings)
            return "index term table malformed";
        for (uint32_t t = 0; t < hd->n_terms; t++)
            if (m->term_str[t] >= m->terms_len || m->term_off[t] > m->term_off[t + 1])
                return "index term table malformed";
        for (size_t i = 0; i < m->n_postings; i++)
            if (m->postings[i] >= hd->count)
                return "index posting out of range";
    }
    for (uint32_t c = 0; c < hd->n_categories; c++)
        if (m->cat_names[c] >= m->strings_len)
            return "index category name out of range";
    for (uint32_t b = 0; b < hd->n_brands; b++)
        if (m->brand_names[b] >= m->strings_len)
            return "index brand name out of range";
    return NULL;
}

/* Points at each section of a mapping whose layout was checked. */
static void s_point(vix_map_t *m)
{
    const vix_header_t *hd = m->hd;
#define SEC(type, s) ((const type *)(m->base + hd->sec[VIX_SEC_##s].off))
    m->vec = SEC(int8_t, VEC);
    m->scale = SEC(float, SCALE);
    m->price = SEC(int64_t, PRICE);
    m->flags = SEC(uint8_t, FLAGS);
    m->cat = SEC(uint16_t, CAT);
    m->brand = SEC(uint16_t, BRAND);
    m->sku = SEC(uint32_t, SKU);
    m->name = SEC(uint32_t, NAME);
    m->cur = SEC(uint32_t, CUR);
    m->sku_order = SEC(uint32_t, SKU_ORDER);
    m->cat_names = SEC(uint32_t, CAT_NAMES);
    m->brand_names = SEC(uint32_t, BRAND_NAMES);
    m->centroids = SEC(float, CENTROIDS);
    m->words = SEC(char, WORDS);
    m->words_len = hd->sec[VIX_SEC_WORDS].len;
    m->terms = SEC(char, TERMS);
    m->terms_len = hd->sec[VIX_SEC_TERMS].len;
    m->term_str = SEC(uint32_t, TERM_STR);
    m->term_off = SEC(uint32_t, TERM_OFF);
    m->postings = SEC(uint32_t, POSTINGS);
    m->n_postings = hd->sec[VIX_SEC_POSTINGS].len / 4;
    m->strings = SEC(char, STRINGS);
    m->strings_len = hd->sec[VIX_SEC_STRINGS].len;
    m->state = SEC(uint8_t, STATE);
    m->state_len = hd->sec[VIX_SEC_STATE].len;
#undef SEC
}

static int s_map(const char *path, vix_map_t **out, file_sig_t *sig, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s_fail(err, errlen, errno == ENOENT ? SOUK_ENOTFOUND : SOUK_EIO, path,
                      errno == ENOENT ? "no product index (run souk import)" : strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return s_fail(err, errlen, SOUK_EIO, path, strerror(errno));
    }
    *sig = s_sig(&st);
    if (st.st_size < (off_t)VIX_HEADER_SIZE) {
        close(fd);
        return s_fail(err, errlen, SOUK_EPROTO, path,
                      "index truncated (shorter than its header)");
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
        return s_fail(err, errlen, SOUK_EIO, path, strerror(errno));
    vix_map_t *m = calloc(1, sizeof *m);
    if (!m) {
        munmap(base, (size_t)st.st_size);
        return SOUK_ENOMEM;
    }
    m->base = base;
    m->size = (size_t)st.st_size;
    m->hd = base;
    m->sig = *sig;
    const char *why = s_check_layout(m->hd, m->size);
    if (!why) {
        s_point(m);
        why = s_check_body(m);
    }
    if (why) {
        s_unmap(&m);
        return s_fail(err, errlen, SOUK_EPROTO, path, why);
    }
    *out = m;
    return SOUK_OK;
}

/* ---- open, refresh, close ---------------------------------------------------- */

int vindex_open(const char *path, int flags, vindex_t **out, char *err, size_t errlen)
{
    if (!path || !*path || !out)
        return SOUK_EINVAL;
    vindex_t *self = calloc(1, sizeof *self);
    if (!self || !(self->path = strdup(path))) {
        free(self);
        return SOUK_ENOMEM;
    }
    file_sig_t sig;
    int rc = s_map(path, &self->map, &sig, err, errlen);
    if (rc == SOUK_ENOTFOUND && (flags & VINDEX_ALLOW_MISSING))
        rc = SOUK_OK;
    if (rc != SOUK_OK) {
        vindex_close(&self);
        return rc;
    }
    *out = self;
    return SOUK_OK;
}

void vindex_close(vindex_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vindex_t *self = *self_p;
    s_unmap(&self->map);
    free(self->q16);
    free(self->path);
    free(self);
    *self_p = NULL;
}

int vindex_refresh(vindex_t *self, bool *changed, char *err, size_t errlen)
{
    if (changed)
        *changed = false;
    if (!self)
        return SOUK_EINVAL;
    struct stat st;
    if (stat(self->path, &st) != 0)
        return errno == ENOENT && !self->map
                   ? s_fail(err, errlen, SOUK_ENOTFOUND, self->path,
                            "no product index (run souk import)")
                   : SOUK_OK;  /* removed under a mapped index: keep serving it */
    file_sig_t now = s_sig(&st);
    if ((self->map && s_sig_equal(&now, &self->map->sig)) ||
        (self->have_failed && s_sig_equal(&now, &self->failed)))
        return self->have_failed && !self->map
                   ? s_fail(err, errlen, SOUK_EPROTO, self->path, "index did not verify")
                   : SOUK_OK;
    vix_map_t *fresh = NULL;
    file_sig_t sig;
    int rc = s_map(self->path, &fresh, &sig, err, errlen);
    if (rc != SOUK_OK) {
        self->failed = sig;
        self->have_failed = rc != SOUK_ENOTFOUND;
        return rc;
    }
    s_unmap(&self->map);
    self->map = fresh;
    self->have_failed = false;
    if (changed)
        *changed = true;
    return SOUK_OK;
}

bool vindex_ready(const vindex_t *self)
{
    return self && self->map;
}

size_t vindex_count(const vindex_t *self)
{
    return self->map ? self->map->hd->count : 0;
}

uint64_t vindex_generation(const vindex_t *self)
{
    return self->map ? self->map->hd->generation : 0;
}

void vindex_embedder(const vindex_t *self, embed_id_t *id)
{
    memset(id, 0, sizeof *id);
    if (!self->map)
        return;
    snprintf(id->name, sizeof id->name, "%s", self->map->hd->embedder);
    id->dim = (int)self->map->hd->dim;
    id->params_hash = self->map->hd->params_hash;
}

void vindex_words(const vindex_t *self, const char **words, size_t *len)
{
    *words = self->map ? self->map->words : NULL;
    *len = self->map ? self->map->words_len : 0;
}

void vindex_state(const vindex_t *self, const uint8_t **blob, size_t *len)
{
    *blob = self->map ? self->map->state : NULL;
    *len = self->map ? self->map->state_len : 0;
}

int vindex_category_count(const vindex_t *self)
{
    return self->map ? (int)self->map->hd->n_categories : 0;
}

const char *vindex_category_name(const vindex_t *self, int id)
{
    if (!self->map || id < 0 || (uint32_t)id >= self->map->hd->n_categories)
        return NULL;
    return self->map->strings + self->map->cat_names[id];
}

const float *vindex_category_centroid(const vindex_t *self, int id)
{
    if (!self->map || id < 0 || (uint32_t)id >= self->map->hd->n_categories)
        return NULL;
    return self->map->centroids + (size_t)id * self->map->hd->dim;
}

int vindex_brand_count(const vindex_t *self)
{
    return self->map ? (int)self->map->hd->n_brands : 0;
}

const char *vindex_brand_name(const vindex_t *self, int id)
{
    if (!self->map || id < 0 || (uint32_t)id >= self->map->hd->n_brands)
        return NULL;
    return self->map->strings + self->map->brand_names[id];
}

int vindex_entry(const vindex_t *self, uint32_t id, vindex_entry_t *out)
{
    if (!self || !out || !self->map || id >= self->map->hd->count)
        return SOUK_ENOTFOUND;
    const vix_map_t *m = self->map;
    out->sku = m->strings + m->sku[id];
    out->name = m->strings + m->name[id];
    out->currency = m->strings + m->cur[id];
    out->category_id = m->cat[id] == VINDEX_NO_ID ? -1 : m->cat[id];
    out->brand_id = m->brand[id] == VINDEX_NO_ID ? -1 : m->brand[id];
    out->category = out->category_id < 0 ? "" : m->strings + m->cat_names[m->cat[id]];
    out->brand = out->brand_id < 0 ? "" : m->strings + m->brand_names[m->brand[id]];
    out->price_cents = m->price[id];
    out->in_stock = m->flags[id] & VIX_FLAG_IN_STOCK;
    return SOUK_OK;
}

int vindex_term_postings(const vindex_t *self, const char *stem, size_t len, const uint32_t **ids,
                         size_t *n)
{
    if (!self || !stem || !ids || !n || !self->map || !self->map->hd->n_terms)
        return SOUK_ENOTFOUND;
    const vix_map_t *m = self->map;
    size_t lo = 0, hi = m->hd->n_terms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *t = m->terms + m->term_str[mid];
        int c = strncmp(stem, t, len);
        if (c == 0)
            c = t[len] ? -1 : 0;
        if (c == 0) {
            *ids = m->postings + m->term_off[mid];
            *n = m->term_off[mid + 1] - m->term_off[mid];
            return SOUK_OK;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return SOUK_ENOTFOUND;
}

/* strncasecmp of key[0..len) against a NUL-terminated s, as whole strings. */
static int s_cmp_key(const char *key, size_t len, const char *s)
{
    int c = strncasecmp(key, s, len);
    if (c)
        return c;
    return s[len] ? -1 : 0;
}

int vindex_find_sku(const vindex_t *self, const char *sku, size_t len, uint32_t *id)
{
    if (!self || !sku || !id || !self->map || len == 0)
        return SOUK_ENOTFOUND;
    const vix_map_t *m = self->map;
    size_t lo = 0, hi = m->hd->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t cand = m->sku_order[mid];
        int c = s_cmp_key(sku, len, m->strings + m->sku[cand]);
        if (c == 0) {
            *id = cand;
            return SOUK_OK;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return SOUK_ENOTFOUND;
}

/* ---- the scan ---------------------------------------------------------------- */

/* int8 row . int16 query. Each product fits in 21 bits, so a 32-bit lane
 * holds 256 of them (4096 dimensions over 16 lanes); the total may not fit
 * in 32 bits and is summed in 64. */
typedef int64_t (*dot_fn)(const int8_t *row, const int16_t *q, size_t n);

static int64_t s_dot_plain(const int8_t *row, const int16_t *q, size_t n)
{
    int64_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += (int32_t)row[i] * q[i];
    return acc;
}

__attribute__((target("avx2"))) static int64_t s_dot_avx2(const int8_t *row, const int16_t *q,
                                                          size_t n)
{
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    for (size_t i = 0; i < n; i += 32) {
        __m256i r = _mm256_load_si256((const __m256i *)(row + i));
        __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(r));
        __m256i hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(r, 1));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(lo, _mm256_load_si256((const __m256i *)(q + i))));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(hi, _mm256_load_si256((const __m256i *)(q + i + 16))));
    }
    __m256i wide = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc0)),
                                    _mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc0, 1)));
    wide = _mm256_add_epi64(wide, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc1)));
    wide = _mm256_add_epi64(wide, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc1, 1)));
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(wide), _mm256_extracti128_si256(wide, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

static dot_fn s_pick_dot(void)
{
    static dot_fn fn;
    if (!fn)
        fn = __builtin_cpu_supports("avx2") && !getenv("SOUK_VINDEX_NO_SIMD") ? s_dot_avx2
                                                                               : s_dot_plain;
    return fn;
}

/* Min-heap on (score, -id): the root is the worst hit kept. */
static bool s_worse(const vindex_hit_t *a, const vindex_hit_t *b)
{
    return a->score < b->score || (a->score == b->score && a->id > b->id);
}

static void s_sift_down(vindex_hit_t *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && s_worse(&h[l], &h[m]))
            m = l;
        if (r < n && s_worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        vindex_hit_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void s_offer(vindex_hit_t *h, int *n, int k, uint32_t id, float score)
{
    vindex_hit_t hit = { id, score };
    if (*n < k) {
        int i = (*n)++;
        h[i] = hit;
        while (i > 0 && s_worse(&h[i], &h[(i - 1) / 2])) {
            vindex_hit_t t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (s_worse(&h[0], &hit)) {
        h[0] = hit;
        s_sift_down(h, k, 0);
    }
}

static int s_cmp_hit(const void *a, const void *b)
{
    const vindex_hit_t *x = a, *y = b;
    return s_worse(x, y) ? 1 : s_worse(y, x) ? -1 : 0;
}

/* The query as int16 in self->q16 (dim_padded, zero padded); its scale. */
static float s_quantize_query(vindex_t *self, const float *vec, uint32_t dim, uint32_t padded)
{
    if (self->q16_cap < padded) {
        free(self->q16);
        self->q16 = aligned_alloc(32, padded * sizeof *self->q16);
        self->q16_cap = self->q16 ? padded : 0;
        if (!self->q16)
            return -1;
    }
    float max = 0;
    for (uint32_t d = 0; d < dim; d++)
        max = fabsf(vec[d]) > max ? fabsf(vec[d]) : max;
    memset(self->q16, 0, padded * sizeof *self->q16);
    if (max == 0)
        return 0;
    for (uint32_t d = 0; d < dim; d++)
        self->q16[d] = (int16_t)lrintf(vec[d] / max * QUERY_MAX);
    return max / QUERY_MAX;
}

int vindex_query(vindex_t *self, const embed_id_t *embedder, const float *vec,
                 const vindex_filter_t *f, int k, vindex_hit_t *hits, int *n, char *err,
                 size_t errlen)
{
    if (!self || !embedder || !vec || !hits || !n || k < 1 || k > VINDEX_K_MAX)
        return SOUK_EINVAL;
    *n = 0;
    const vix_map_t *m = self->map;
    if (!m)
        return s_fail(err, errlen, SOUK_EUNAVAIL, self->path, "no product index (run souk import)");
    embed_id_t mine;
    vindex_embedder(self, &mine);
    if (!embed_id_equal(&mine, embedder)) {
        char a[96], b[96], why[256];
        snprintf(why, sizeof why,
                 "index built by embedder %s, query embedded by %s: refused (rebuild the index "
                 "with souk import, or query with the same embedder)",
                 embed_id_format(&mine, a, sizeof a), embed_id_format(embedder, b, sizeof b));
        return s_fail(err, errlen, SOUK_ECONFIG, self->path, why);
    }
    const vix_header_t *hd = m->hd;
    float qscale = s_quantize_query(self, vec, hd->dim, hd->dim_padded);
    if (qscale < 0)
        return SOUK_ENOMEM;
    vindex_filter_t none = { .max_price_cents = -1, .exclude_id = -1 };
    if (!f)
        f = &none;
    dot_fn dot = s_pick_dot();
    int got = 0;
    size_t padded = hd->dim_padded;
    for (uint64_t i = 0; i < hd->count; i++) {
        if ((f->in_stock_only && !(m->flags[i] & VIX_FLAG_IN_STOCK)) ||
            (f->max_price_cents >= 0 && m->price[i] > f->max_price_cents) ||
            (f->category_mask && (m->cat[i] == VINDEX_NO_ID || !f->category_mask[m->cat[i]])) ||
            (int64_t)i == f->exclude_id)
            continue;
        float score = (float)dot(m->vec + i * padded, self->q16, padded) * qscale * m->scale[i];
        if (f->brand_boost && m->brand[i] != VINDEX_NO_ID)
            score += f->brand_boost[m->brand[i]];
        if (f->category_boost && m->cat[i] != VINDEX_NO_ID)
            score += f->category_boost[m->cat[i]];
        if (f->extra)
            score += f->extra[i];
        s_offer(hits, &got, k, (uint32_t)i, score);
    }
    qsort(hits, (size_t)got, sizeof *hits, s_cmp_hit);
    *n = got;
    return SOUK_OK;
}
