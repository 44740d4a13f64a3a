/* `souk import FILE [--dry-run] [--if-empty] [--format csv|json|jsonl]`:
 * loads a catalogue file into the store, all or nothing, then rebuilds the
 * search index that running actors pick up without a restart.
 *
 * The file is read and validated whole first (souk/catalog.h); one rejected
 * record and nothing is written: every problem is printed with its line and
 * the command exits 1. Otherwise every row goes to the store in one
 * store_product_upsert (one transaction), so a crash at any point leaves
 * either the old catalogue or the new one, never a mix. Rows are upserted by
 * SKU; products the file does not name are left as they are.
 *
 * Exit: 0 imported (or, with --if-empty, nothing to do), 1 rejected records
 * or a failure, 2 usage.
 *
 * Test hook: SOUK_IMPORT_CRASH=before-commit makes the process kill itself
 * (SIGKILL) inside SQLite right before the import's transaction commits. */
#include "cli.h"
#include "souk/catalog.h"
#include "souk/embed.h"
#include "souk/error.h"
#include "souk/search.h"
#include "souk/store.h"
#include "souk/stt.h"

#include <jansson.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_MIN_BYTES (1 << 20)     /* smaller files need no progress bar */
#define PROGRESS_REDRAW_S 0.1
#define BAR_WIDTH 30

typedef struct {
    const char *path;
    catalog_format_t format;
    bool dry_run, if_empty;
} import_args_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- progress on a terminal --------------------------------------------------- */

typedef struct {
    bool on;
    double last;
} progress_t;

static void s_progress_parse(void *arg, size_t done, size_t total, size_t records)
{
    progress_t *pg = arg;
    double now = s_now();
    if (!pg->on || (now - pg->last < PROGRESS_REDRAW_S && done < total))
        return;
    pg->last = now;
    int fill = total ? (int)((double)done / (double)total * BAR_WIDTH) : BAR_WIDTH;
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r\033[Kreading [%s] %3d%%  %zu records", bar,
            total ? (int)(100.0 * (double)done / (double)total) : 100, records);
}

static void s_progress_phase(const progress_t *pg, const char *text, size_t n)
{
    if (pg->on)
        fprintf(stderr, "\r\033[K%s %zu products...", text, n);
}

static void s_progress_end(const progress_t *pg)
{
    if (pg->on)
        fprintf(stderr, "\r\033[K");
}

/* ---- the crash hook for tests ---------------------------------------------------- */

static volatile sig_atomic_t s_crash_armed;

static int s_crash_on_commit(void *arg)
{
    (void)arg;
    if (s_crash_armed)
        raise(SIGKILL);
    return 0;
}

static int s_crash_install(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
    (void)err, (void)api;
    sqlite3_commit_hook(db, s_crash_on_commit, NULL);
    return SQLITE_OK;
}

static void s_crash_hook_setup(void)
{
    const char *when = getenv("SOUK_IMPORT_CRASH");
    if (when && strcmp(when, "before-commit") == 0)
        sqlite3_auto_extension((void (*)(void))s_crash_install);
}

/* ---- steps ------------------------------------------------------------------------ */

static int s_usage(void)
{
    fprintf(stderr, "usage: souk import FILE [--dry-run] [--if-empty] [--format csv|json|jsonl]\n");
    return 2;
}

static int s_parse_args(int argc, char **argv, import_args_t *a)
{
    *a = (import_args_t) { .format = CATALOG_AUTO };
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0)
            a->dry_run = true;
        else if (strcmp(argv[i], "--if-empty") == 0)
            a->if_empty = true;
        else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc
                 && catalog_format_parse(argv[i + 1], &a->format) == SOUK_OK)
            i++;
        else if ((argv[i][0] == '-' && argv[i][1]) || a->path)
            return SOUK_EINVAL;
        else
            a->path = argv[i];
    }
    return a->path ? SOUK_OK : SOUK_EINVAL;
}

static store_t *s_store_open(const souk_config_t *cfg)
{
    store_t *store = NULL;
    char err[512];
    if (store_open(cfg->store, cfg->store_dir, NULL, &store, err, sizeof err) != SOUK_OK)
        fprintf(stderr, "souk import: cannot open the store: %s\n", err);
    return store;
}

/* Counts the file's products the store already has. */
typedef struct {
    const catalog_t *cat;
    size_t updated;
} known_t;

static int s_count_known(const store_product_t *p, void *arg)
{
    known_t *k = arg;
    if (catalog_find(k->cat, p->sku) >= 0)
        k->updated++;
    return 0;
}

static void s_report_problems(const import_args_t *a, const catalog_t *cat)
{
    for (size_t i = 0; i < cat->n_problems; i++) {
        if (cat->problems[i].line)
            fprintf(stderr, "line %zu: %s\n", cat->problems[i].line, cat->problems[i].reason);
        else
            fprintf(stderr, "%s: %s\n", a->path, cat->problems[i].reason);
    }
    size_t rejected = cat->records - cat->n_rows;
    fprintf(stderr, "souk import: %s: %zu of %zu records rejected; nothing %s\n", a->path, rejected,
            cat->records, a->dry_run ? "would be imported" : "imported");
}

/* Whether the catalogue is empty: 1 yes, 0 no, -1 error. */
static int s_store_empty(store_t *store)
{
    int64_t n = 0;
    int rc = store_product_count(store, &n);
    if (rc != SOUK_OK) {
        fprintf(stderr, "souk import: cannot count products: %s\n", store_last_error(store));
        return -1;
    }
    if (n > 0)
        fprintf(stderr, "souk import: the catalogue has %lld products; --if-empty imports nothing\n",
                (long long)n);
    return n == 0;
}

static int s_write(store_t *store, const catalog_t *cat, const progress_t *pg)
{
    s_progress_phase(pg, "writing", cat->n_rows);
    s_crash_armed = 1;
    size_t bad = 0;
    int rc = store_product_upsert(store, cat->rows, cat->n_rows, &bad);
    s_crash_armed = 0;
    if (rc == SOUK_EINVAL && bad < cat->n_rows) {
        s_progress_end(pg);
        fprintf(stderr, "line %zu: refused by the store\n", cat->lines[bad]);
    }
    if (rc != SOUK_OK) {
        s_progress_end(pg);
        fprintf(stderr, "souk import: nothing imported: %s (%s)\n", souk_strerror(rc),
                store_last_error(store));
        return 1;
    }
    return 0;
}

/* A remote embedder's progress (SOUK_EMBEDDER=openai): batches over the
 * network take long enough for a bar, whatever the file's size. */
typedef struct {
    size_t total;
    double last;
} embed_bar_t;

static void s_progress_embed(size_t done, void *arg)
{
    embed_bar_t *b = arg;
    double now = s_now();
    if (now - b->last < PROGRESS_REDRAW_S && done < b->total)
        return;
    b->last = now;
    size_t total = b->total > done ? b->total : done;
    int fill = (int)((double)done / (double)total * BAR_WIDTH);
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r\033[Kembedding [%s] %3d%%  %zu/%zu products", bar,
            (int)(100.0 * (double)done / (double)total), done, total);
}

static int s_reindex(const souk_config_t *cfg, store_t *store, size_t n, const progress_t *pg,
                     search_build_stats_t *st)
{
    char err[512] = "";
    s_progress_phase(pg, "indexing", n);
    int64_t total = 0;
    embed_bar_t bar = { 0 };
    bool remote = strcmp(cfg->embedder, "openai") == 0 && isatty(STDERR_FILENO)
               && store_product_count(store, &total) == SOUK_OK;
    if (remote) {
        bar.total = (size_t)total;
        embed_progress_set(s_progress_embed, &bar);
    }
    int rc = search_build_index(store, cfg->data_dir, NULL, st, err, sizeof err);
    if (remote) {
        embed_progress_set(NULL, NULL);
        fprintf(stderr, "\r\033[K");
    }
    s_progress_end(pg);
    if (rc != SOUK_OK) {
        fprintf(stderr, "souk import: the products are imported, but the search index was not "
                        "rebuilt: %s (%s); run the import again\n", err, souk_strerror(rc));
        return 1;
    }
    return 0;
}

/* Training text for the speech model from one product: its name, brand,
 * category and tags, alone and as a customer would ask for them. */
static int s_speech_product(const store_product_t *p, void *arg)
{
    stt_lm_t *lm = arg;
    static const char *const asks[] = { "show me %s", "do you have %s", "i want %s",
                                        "how much is %s" };
    const char *fields[] = { p->name, p->brand, p->category };
    for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
        if (!fields[f] || !*fields[f])
            continue;
        char line[512];
        for (size_t i = 0; i < sizeof asks / sizeof *asks; i++) {
            snprintf(line, sizeof line, asks[i], fields[f]);
            if (stt_lm_add(lm, line) != SOUK_OK)
                return SOUK_ENOMEM;
        }
    }
    json_t *tags = p->tags ? json_loads(p->tags, 0, NULL) : NULL;
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
        if (json_is_string(t))
            stt_lm_add(lm, json_string_value(t));
    json_decref(tags);
    return stt_lm_add(lm, p->description ? p->description : "");
}

/* The shop's speech model for voice notes (souk/stt.h), from the agent's
 * utterances and the whole catalogue, into <data>/stt/. A failure is a
 * warning: voice notes then use pocketsphinx's generic model. */
static void s_speech_model(const souk_config_t *cfg, store_t *store)
{
    double t0 = s_now();
    char dir[4096], err[512] = "";
    snprintf(dir, sizeof dir, "%s/stt", cfg->data_dir);
    stt_lm_t *lm = stt_lm_new();
    size_t words = 0;
    int rc = lm ? stt_lm_add_tsv(lm, stt_utterances()) : SOUK_ENOMEM;
    if (rc == SOUK_OK)
        rc = store_product_each(store, s_speech_product, lm);
    if (rc == SOUK_OK)
        rc = stt_lm_write(lm, dir, NULL, &words, err, sizeof err);
    stt_lm_destroy(&lm);
    if (rc != SOUK_OK)
        fprintf(stderr, "souk import: no speech model for voice notes (%s%s%s); they will use "
                        "the generic one\n", souk_strerror(rc), *err ? ": " : "", err);
    else
        fprintf(stderr, "souk import: speech model of %zu words in %s (%.2f s)\n", words, dir,
                s_now() - t0);
}

/* The dry run must write nothing, not even a new database. */
static bool s_store_exists(const souk_config_t *cfg)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/souk.db", cfg->store_dir);
    return strcmp(cfg->store, "sqlite") != 0 || stat(path, &st) == 0;
}

/* Reads and validates the whole file; NULL (reported) when it cannot be read
 * or has problems. */
static catalog_t *s_load(const import_args_t *a, progress_t *pg)
{
    catalog_options_t opt = { .format = a->format, .now_ms = s_wall_ms(),
                              .progress = s_progress_parse, .progress_arg = pg };
    catalog_t *cat = NULL;
    char err[512];
    int rc = catalog_load(a->path, &opt, &cat, err, sizeof err);
    s_progress_end(pg);
    if (rc != SOUK_OK)
        fprintf(stderr, "souk import: %s\n", err);
    else if (cat->n_problems)
        s_report_problems(a, cat);
    else
        return cat;
    catalog_destroy(&cat);
    return NULL;
}

/* The import proper; store is NULL for a dry run without a database. */
static int s_import(const souk_config_t *cfg, const import_args_t *a, store_t *store)
{
    struct stat fst;
    progress_t pg = { .on = isatty(STDERR_FILENO) && stat(a->path, &fst) == 0
                            && fst.st_size >= PROGRESS_MIN_BYTES };
    double t0 = s_now();
    catalog_t *cat = s_load(a, &pg);
    if (!cat)
        return 1;
    int rc = 1;
    known_t known = { .cat = cat };
    if (store && store_product_each(store, s_count_known, &known) != SOUK_OK) {
        fprintf(stderr, "souk import: cannot read the catalogue: %s\n", store_last_error(store));
        goto cleanup;
    }
    size_t n = cat->n_rows, added = n - known.updated;
    if (a->dry_run) {
        printf("dry run: %zu products valid (%zu new, %zu updated); nothing written\n", n, added,
               known.updated);
        rc = 0;
        goto cleanup;
    }
    double t1 = s_now();
    if (s_write(store, cat, &pg) != 0)
        goto cleanup;
    double t2 = s_now();
    s_progress_end(&pg);
    printf("imported %zu products (%zu new, %zu updated)\n", n, added, known.updated);
    fflush(stdout);
    search_build_stats_t st = { 0 };
    rc = s_reindex(cfg, store, n, &pg, &st);
    double t3 = s_now();
    fprintf(stderr, "souk import: read %.2f s, written %.2f s, search index of %zu products %.2f s:"
                    " %.0f products/s\n", t1 - t0, t2 - t1, st.products, t3 - t2,
            (double)n / (t3 - t0 > 0 ? t3 - t0 : 1e-9));
    if (rc == 0)
        s_speech_model(cfg, store);
cleanup:
    catalog_destroy(&cat);
    return rc;
}

int cli_import(souk_config_t *cfg, int argc, char **argv)
{
    import_args_t a;
    if (s_parse_args(argc, argv, &a) != SOUK_OK)
        return s_usage();
    s_crash_hook_setup();
    store_t *store = NULL;
    if (!(a.dry_run && !s_store_exists(cfg)) && !(store = s_store_open(cfg)))
        return 1;
    int empty = a.if_empty && store ? s_store_empty(store) : 1;
    int rc = empty < 0 ? 1 : empty == 0 ? 0 : s_import(cfg, &a, store);
    store_close(&store);
    return rc;
}
