/* bench_search: product search at 1,000 / 100,000 / 1,000,000 products.
 *
 * For each size: a synthetic catalogue (generated names, brands, categories
 * and descriptions, deterministic) is imported the way `souk import` does it
 * (search_build with the local embedder: learn, embed, write the index), then
 * the same queries run one at a time on one pinned core against
 *   - the index (vindex_query: int8 scan, top 10),
 *   - search_query end to end (price words, SKUs, spelling, query embedding),
 *   - an exact float scan (plain C loop) over the embedder's float vectors:
 *     the ground truth for recall@10,
 *   - FAISS's IndexFlatIP over the same float vectors (when built with it).
 *
 * Usage: bench_search [SIZE...] (default 1000 100000 1000000). With
 * SOUK_VECTOR=pinecone (and PINECONE_INDEX_HOST, PINECONE_API_KEY) the
 * build also upserts to Pinecone and search_query asks it (docs/BENCHMARKS.md
 * measures that against tests/fakes/pinecone_fake.py). */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "souk/error.h"
#include "souk/search.h"
#include "souk/vindex.h"

#ifdef HAVE_FAISS
void *bench_faiss_new(int dim);
void bench_faiss_add(void *index, long n, const float *vectors);
void bench_faiss_search(void *index, const float *query, int k, float *scores, long *ids);
void bench_faiss_free(void *index);
#endif

#define K 10

/* ---- a deterministic catalogue ----------------------------------------------- */

static uint64_t s_rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)((s_rng >> 11) % n);
}

#define COUNT(a) (sizeof a / sizeof a[0])

static const char *const s_nouns[] = {
    "shoe", "sneaker", "boot", "sandal", "shirt", "dress", "jacket", "jeans", "watch", "ring",
    "necklace", "bag", "backpack", "wallet", "phone", "laptop", "tablet", "headphones",
    "speaker", "charger", "camera", "lamp", "chair", "sofa", "table", "bed", "pillow",
    "blanket", "mug", "pan", "knife", "bottle", "lipstick", "mascara", "perfume", "lotion",
    "shampoo", "soap", "ball", "racket", "bike", "helmet", "tent", "glove", "scarf", "hat",
    "belt", "socks", "toy", "puzzle", "book", "pen", "notebook", "guitar", "drone", "keyboard",
    "mouse", "monitor", "printer", "router",
};
static const char *const s_categories[] = {
    "footwear", "clothing", "watches", "jewellery", "bags", "smartphones", "computers",
    "audio", "electronics", "home", "furniture", "bedding", "kitchen", "beauty", "fragrances",
    "skin-care", "sports", "outdoor", "accessories", "toys",
};
static const char *const s_adjectives[] = {
    "classic", "modern", "slim", "compact", "premium", "soft", "durable", "lightweight",
    "waterproof", "wireless", "portable", "elegant", "sporty", "vintage", "ergonomic", "smart",
    "rugged", "cozy", "bold", "minimal", "luxury", "everyday", "foldable", "quiet", "fast",
    "warm", "breathable", "handmade", "organic", "adjustable",
};
static const char *const s_colors[] = {
    "red", "blue", "black", "white", "green", "grey", "pink", "brown", "beige", "navy",
    "gold", "silver", "orange", "purple", "yellow",
};
static const char *const s_materials[] = {
    "leather", "cotton", "wool", "steel", "aluminium", "wood", "bamboo", "glass", "ceramic",
    "silicone", "canvas", "linen", "nylon", "titanium", "plastic",
};
static const char *const s_filler[] = {
    "perfect", "for", "daily", "use", "with", "a", "comfortable", "fit", "and", "long",
    "lasting", "quality", "design", "that", "keeps", "you", "ready", "travel", "office",
    "home", "gift", "easy", "to", "clean", "care", "strong", "build", "great", "value",
    "season", "style", "finish", "feel", "made", "in", "small", "batches", "tested", "by",
    "experts", "warranty", "included", "free", "returns", "within", "days", "ships", "fast",
};
static const char *const s_syllables[] = {
    "ka", "lo", "ra", "mi", "to", "ve", "nu", "sa", "zen", "dor", "lux", "pi", "qu", "bel",
    "tor", "an", "el", "vio", "mar", "tek",
};

typedef struct {
    store_product_t *rows;
    size_t n;
    char *arena;
} catalogue_t;

static int each_row(void *src, store_product_cb cb, void *arg)
{
    const catalogue_t *c = src;
    for (size_t i = 0; i < c->n; i++) {
        int rc = cb(&c->rows[i], arg);
        if (rc)
            return rc < 0 ? rc : 0;
    }
    return 0;
}

static void brand_name(uint32_t b, char *out, size_t len)
{
    uint32_t x = b * 2654435761u;
    snprintf(out, len, "%s%s%s", s_syllables[x % 20], s_syllables[(x >> 8) % 20],
             s_syllables[(b * 7) % 20]);
    out[0] = (char)(out[0] - 32);
}

/* Builds n products; every string lives in one arena. */
static void make_catalogue(size_t n, catalogue_t *c)
{
    c->n = n;
    c->rows = calloc(n ? n : 1, sizeof *c->rows);
    size_t cap = n * 400 + 1, used = 0;
    c->arena = malloc(cap);
#define PUT(field, ...)                                                      \
    do {                                                                     \
        int w = snprintf(c->arena + used, cap - used, __VA_ARGS__);         \
        p->field = c->arena + used;                                          \
        used += (size_t)w + 1;                                               \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        store_product_t *p = &c->rows[i];
        uint32_t noun = rnd(COUNT(s_nouns)), adj = rnd(COUNT(s_adjectives));
        uint32_t color = rnd(COUNT(s_colors)), mat = rnd(COUNT(s_materials));
        char brand[32];
        brand_name(rnd(500), brand, sizeof brand);
        PUT(sku, "SKU-%07zu", i);
        PUT(name, "%s %s %s %s %u", brand, s_adjectives[adj], s_colors[color], s_nouns[noun],
            rnd(1000));
        PUT(brand, "%s", brand);
        PUT(category, "%s", s_categories[noun / 3]);
        PUT(currency, "EUR");
        char desc[256];
        int dl = snprintf(desc, sizeof desc, "A %s %s made of %s with a %s finish.",
                          s_adjectives[rnd(COUNT(s_adjectives))], s_nouns[noun],
                          s_materials[mat], s_adjectives[rnd(COUNT(s_adjectives))]);
        for (int w = 0; w < 12 && dl < 230; w++)
            dl += snprintf(desc + dl, sizeof desc - (size_t)dl, " %s",
                           s_filler[rnd(COUNT(s_filler))]);
        PUT(description, "%s", desc);
        p->price_cents = 100 + rnd(100000);
        p->stock = rnd(10) ? 1 + rnd(100) : 0;
    }
#undef PUT
}

/* A query in a customer's words; price words only where asked. */
static void make_query(char *out, size_t len, int with_price)
{
    const char *noun = s_nouns[rnd(COUNT(s_nouns))];
    char brand[32], typo[40];
    switch (rnd(5)) {
    case 0:
        snprintf(out, len, "%s %s", s_colors[rnd(COUNT(s_colors))], noun);
        break;
    case 1:
        snprintf(out, len, "%s %s %s", s_adjectives[rnd(COUNT(s_adjectives))], noun,
                 s_materials[rnd(COUNT(s_materials))]);
        break;
    case 2:
        brand_name(rnd(500), brand, sizeof brand);
        snprintf(out, len, "%s %s", brand, noun);
        break;
    case 3:                                        /* a letter dropped */
        snprintf(typo, sizeof typo, "%s", noun);
        if (strlen(typo) > 4)
            memmove(typo + 2, typo + 3, strlen(typo + 3) + 1);
        snprintf(out, len, "%s", typo);
        break;
    default:
        snprintf(out, len, "something %s for %s", s_adjectives[rnd(COUNT(s_adjectives))],
                 s_filler[rnd(COUNT(s_filler))]);
    }
    if (with_price && rnd(3) == 0) {
        size_t l = strlen(out);
        snprintf(out + l, len - l, " under %u dollars", 10 + rnd(500));
    }
}

/* ---- measuring ------------------------------------------------------------------ */

static void percentiles(double *v, size_t n, double *p50, double *p99)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    *p50 = v[n / 2] * 1e3;
    *p99 = v[n * 99 / 100 < n ? n * 99 / 100 : n - 1] * 1e3;
}

/* Exact top K by float dot product: the plain C loop baseline. */
static void float_topk(const float *vecs, size_t n, int dim, const float *q, long *ids)
{
    float best[K];
    for (int i = 0; i < K; i++) {
        best[i] = -1e30f;
        ids[i] = -1;
    }
    for (size_t i = 0; i < n; i++) {
        const float *v = vecs + i * (size_t)dim;
        float s = 0;
        for (int d = 0; d < dim; d++)
            s += v[d] * q[d];
        if (s <= best[K - 1])
            continue;
        int j = K - 1;
        while (j > 0 && best[j - 1] < s) {
            best[j] = best[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        best[j] = s;
        ids[j] = (long)i;
    }
}

static double overlap(const long *truth, const vindex_hit_t *hits, int n)
{
    int same = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < n; j++)
            same += truth[i] >= 0 && (long)hits[j].id == truth[i];
    return same / (double)K;
}

static void run(size_t n, const char *dir)
{
    catalogue_t cat;
    s_rng = 0x9e3779b97f4a7c15ULL + n;
    make_catalogue(n, &cat);
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/bench-%zu.vindex", dir, n);

    embedder_t *e;
    if (embed_new("local", &e, err, sizeof err) != SOUK_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    int dim = embed_dim(e);
    search_build_stats_t st;
    if (search_build(path, e, each_row, &cat, &st, err, sizeof err) != SOUK_OK) {
        fprintf(stderr, "build: %s\n", err);
        exit(1);
    }

    /* the float vectors the index was quantized from */
    float *vecs = malloc(n * (size_t)dim * sizeof *vecs);
    for (size_t i = 0; i < n; i += 256) {
        embed_doc_t docs[256];
        size_t m = n - i < 256 ? n - i : 256;
        for (size_t j = 0; j < m; j++) {
            const store_product_t *p = &cat.rows[i + j];
            docs[j] = (embed_doc_t){ { p->name, p->brand, p->category, p->tags, p->description,
                                       p->attrs } };
        }
        embed_docs(e, docs, m, vecs + i * (size_t)dim);
    }

    size_t nq = n >= 1000000 ? 200 : 1000;
    char (*texts)[128] = malloc(nq * sizeof *texts);
    char (*plain)[128] = malloc(nq * sizeof *plain);
    float *qv = malloc(nq * (size_t)dim * sizeof *qv);
    s_rng = 0x51ed2701ULL;
    for (size_t q = 0; q < nq; q++) {
        make_query(texts[q], sizeof texts[q], 1);
        int64_t cents;
        search_parse_price_limit(texts[q], &cents, plain[q], sizeof plain[q]);
        const char *t = plain[q];
        embed_texts(e, EMBED_QUERY, &t, 1, qv + q * (size_t)dim);
    }
    embed_id_t id;
    embed_identity(e, &id);

    double t0 = bench_seconds();
    vindex_t *vx;
    if (vindex_open(path, 0, &vx, err, sizeof err) != SOUK_OK) {
        fprintf(stderr, "open: %s\n", err);
        exit(1);
    }
    double open_ms = (bench_seconds() - t0) * 1e3;

    double *lat = malloc(nq * sizeof *lat), *lat_f = malloc(nq * sizeof *lat_f);
    double *lat_s = malloc(nq * sizeof *lat_s), recall = 0;
    vindex_hit_t hits[K];
    long truth[K];
    for (size_t q = 0; q < nq; q++) {
        int got;
        t0 = bench_seconds();
        vindex_query(vx, &id, qv + q * (size_t)dim, NULL, K, hits, &got, err, sizeof err);
        lat[q] = bench_seconds() - t0;
        t0 = bench_seconds();
        float_topk(vecs, n, dim, qv + q * (size_t)dim, truth);
        lat_f[q] = bench_seconds() - t0;
        recall += overlap(truth, hits, got);
    }
    recall /= (double)nq;

    search_t *s;
    embedder_t *qe;
    embed_new("local", &qe, NULL, 0);
    search_open_index(path, qe, &s, err, sizeof err);
    search_hit_t sh[K];
    for (size_t q = 0; q < nq; q++) {
        int got;
        t0 = bench_seconds();
        search_query(s, texts[q], NULL, K, sh, &got);
        lat_s[q] = bench_seconds() - t0;
    }

    double p50, p99, f50, f99, s50, s99;
    percentiles(lat, nq, &p50, &p99);
    percentiles(lat_f, nq, &f50, &f99);
    percentiles(lat_s, nq, &s50, &s99);
    printf("\n== %zu products, %d dimensions, %zu queries, one core ==\n", n, dim, nq);
    printf("import (learn + embed + write): %.0f products/s  (%.2f s: learn %.2f s, embed %.2f s)\n",
           (double)n / st.total_seconds, st.total_seconds, st.fit_seconds, st.embed_seconds);
    struct stat fst;
    stat(path, &fst);
    printf("index file %.1f MB, mapped and verified in %.1f ms\n", (double)fst.st_size / 1e6,
           open_ms);
    printf("%-38s p50 %8.3f ms  p99 %8.3f ms\n", "vindex_query int8 top-10", p50, p99);
    const char *store = getenv("SOUK_VECTOR") && *getenv("SOUK_VECTOR") ? getenv("SOUK_VECTOR")
                                                                         : "local";
    char label[64];
    snprintf(label, sizeof label, "search_query end to end (%s)", store);
    printf("%-38s p50 %8.3f ms  p99 %8.3f ms\n", label, s50, s99);
    printf("%-38s p50 %8.3f ms  p99 %8.3f ms\n", "exact float scan (plain C loop)", f50, f99);
    printf("recall@10 of the index vs exact float: %.4f\n", recall);

#ifdef HAVE_FAISS
    void *fx = bench_faiss_new(dim);
    bench_faiss_add(fx, (long)n, vecs);
    float fs[K];
    long fi[K];
    for (size_t q = 0; q < nq; q++) {
        t0 = bench_seconds();
        bench_faiss_search(fx, qv + q * (size_t)dim, K, fs, fi);
        lat_f[q] = bench_seconds() - t0;
    }
    percentiles(lat_f, nq, &f50, &f99);
    printf("%-38s p50 %8.3f ms  p99 %8.3f ms\n", "FAISS IndexFlatIP (float, 1 thread)", f50, f99);
    bench_faiss_free(fx);
#else
    printf("FAISS: not built (no libfaiss-dev or no C++ compiler)\n");
#endif
    fflush(stdout);

    search_close(&s);
    vindex_close(&vx);
    embed_destroy(&e);
    unlink(path);
    free(lat);
    free(lat_f);
    free(lat_s);
    free(qv);
    free(texts);
    free(plain);
    free(vecs);
    free(cat.rows);
    free(cat.arena);
}

int main(int argc, char **argv)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET((int)(sysconf(_SC_NPROCESSORS_ONLN) - 1), &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0)
        perror("sched_setaffinity");
    char dir[] = "/tmp/souk-bench-search-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    size_t sizes[8] = { 1000, 100000, 1000000 };
    int ns = 3;
    if (argc > 1) {
        ns = 0;
        for (int i = 1; i < argc && ns < 8; i++)
            sizes[ns++] = strtoul(argv[i], NULL, 10);
    }
    for (int i = 0; i < ns; i++)
        run(sizes[i], dir);
    rmdir(dir);
    return 0;
}
