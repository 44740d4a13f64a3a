/* vindex_format: the on-disk layout of products.vindex, shared by the writer
 * (vindex_writer.c) and the reader (vindex.c). Private.
 *
 * [header, VIX_HEADER_SIZE bytes][sections, each 64-byte aligned]
 * The header names each section's offset and length; VEC comes first, so
 * the writer streams vectors straight to the file. Host byte order
 * (little-endian); `endian` catches a file from another byte order.
 * body_hash covers every byte after the header (padding too), header_hash
 * the header before it. */
#ifndef SOUK_VINDEX_FORMAT_H
#define SOUK_VINDEX_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VIX_MAGIC "SOUKVIX\n"
#define VIX_VERSION 1
#define VIX_ENDIAN 0x01020304u
#define VIX_HEADER_SIZE 4096
#define VIX_ALIGN 64
#define VIX_ROW_ALIGN 32           /* a vector row is padded to this many bytes */

/* The sections, in file order. */
#define VIX_SECTION_MAP(XX)                                                  \
    XX(VEC)         /* int8 [count][dim_padded] */                           \
    XX(SCALE)       /* float [count]: component = int8 * scale */            \
    XX(PRICE)       /* int64 [count] cents */                                \
    XX(FLAGS)       /* uint8 [count]: VIX_FLAG_* */                          \
    XX(CAT)         /* uint16 [count] category id or VINDEX_NO_ID */         \
    XX(BRAND)       /* uint16 [count] brand id or VINDEX_NO_ID */            \
    XX(SKU)         /* uint32 [count] offsets into STRINGS */                \
    XX(NAME)        /* uint32 [count] */                                     \
    XX(CUR)         /* uint32 [count] */                                     \
    XX(SKU_ORDER)   /* uint32 [count] ids sorted by SKU, ASCII case folded */\
    XX(CAT_NAMES)   /* uint32 [n_categories] offsets into STRINGS */         \
    XX(BRAND_NAMES) /* uint32 [n_brands] */                                  \
    XX(CENTROIDS)   /* float [n_categories][dim]: each category's mean     \
                       vector, normalized: what the category is about */    \
    XX(WORDS)       /* the catalogue's words, sorted, each NUL-terminated:   \
                       what a misspelt query word is corrected to */        \
    XX(TERMS)       /* the products' word stems, NUL-terminated            \
                       (exact matching: which products hold a word) */      \
    XX(TERM_STR)    /* uint32 [n_terms] offsets into TERMS, sorted by stem */\
    XX(TERM_OFF)    /* uint32 [n_terms + 1]: each stem's run in POSTINGS */ \
    XX(POSTINGS)    /* uint32 product ids, ascending within a stem */        \
    XX(STRINGS)     /* NUL-terminated strings; the last byte is NUL */       \
    XX(STATE)       /* the embedder's learnt state */

enum {
#define XX(name) VIX_SEC_##name,
    VIX_SECTION_MAP(XX)
#undef XX
    VIX_SEC_COUNT
};

#define VIX_FLAG_IN_STOCK 1u

typedef struct {
    char magic[8];
    uint32_t version, endian;
    uint64_t header_size, file_size;
    uint64_t generation, created_ms;
    uint64_t count;
    uint32_t dim, dim_padded;
    uint32_t n_categories, n_brands;
    uint32_t n_terms, reserved;
    char embedder[32];
    uint64_t params_hash;
    struct {
        uint64_t off, len;
    } sec[VIX_SEC_COUNT];
    uint64_t body_hash;
    uint64_t header_hash;      /* of the bytes before this field */
} vix_header_t;

/* A streaming 64-bit hash (four xxh64-style lanes): ~10 GB/s, so checking
 * a whole index when it is mapped costs little next to reading it. */
typedef struct {
    uint64_t v[4];
    uint8_t buf[32];
    size_t buflen;
    uint64_t total;
} vix_hash_t;

#define VIX_P1 0x9E3779B185EBCA87ULL
#define VIX_P2 0xC2B2AE3D27D4EB4FULL

static inline uint64_t vix_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline void vix_hash_init(vix_hash_t *h, uint64_t seed)
{
    h->v[0] = seed + VIX_P1 + VIX_P2;
    h->v[1] = seed + VIX_P2;
    h->v[2] = seed;
    h->v[3] = seed - VIX_P1;
    h->buflen = 0;
    h->total = 0;
}

static inline void vix_hash_block(vix_hash_t *h, const uint8_t *p)
{
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        h->v[i] = vix_rotl(h->v[i] + w * VIX_P2, 31) * VIX_P1;
    }
}

static inline void vix_hash_update(vix_hash_t *h, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (len == 0)
        return;                    /* data may be NULL */
    h->total += len;
    if (h->buflen) {
        size_t take = 32 - h->buflen < len ? 32 - h->buflen : len;
        memcpy(h->buf + h->buflen, p, take);
        h->buflen += take;
        p += take;
        len -= take;
        if (h->buflen < 32)
            return;
        vix_hash_block(h, h->buf);
        h->buflen = 0;
    }
    for (; len >= 32; p += 32, len -= 32)
        vix_hash_block(h, p);
    memcpy(h->buf, p, len);
    h->buflen = len;
}

static inline uint64_t vix_hash_final(vix_hash_t *h)
{
    uint64_t r = vix_rotl(h->v[0], 1) + vix_rotl(h->v[1], 7) + vix_rotl(h->v[2], 12) +
                 vix_rotl(h->v[3], 18) + h->total;
    for (size_t i = 0; i < h->buflen; i++)
        r = vix_rotl(r ^ (h->buf[i] * VIX_P1), 11) * VIX_P2;
    r ^= r >> 33;
    r *= VIX_P2;
    r ^= r >> 29;
    return r;
}

static inline uint64_t vix_hash(const void *data, size_t len, uint64_t seed)
{
    vix_hash_t h;
    vix_hash_init(&h, seed);
    vix_hash_update(&h, data, len);
    return vix_hash_final(&h);
}

#define VIX_BODY_SEED 0x5eedULL

static inline uint64_t vix_header_hash(const vix_header_t *hd)
{
    return vix_hash(hd, offsetof(vix_header_t, header_hash), 0x4ead);
}

#endif
