/* `souk import` and the merchant's commands, as processes: the real binary
 * ($SOUK_BIN) on its own data folder (/tmp/sk-XXXXXX) per test, checked
 * through its output, its exit status and the store API.
 *
 * Covers: CSV/JSON/JSON lines end to end with free attributes, upsert by
 * SKU, rejected rows (all reported, nothing written), duplicate SKUs,
 * --dry-run, --if-empty, a 200,000-row file (its rate is printed), a crash
 * right before commit and a SIGKILL while reading (the old catalogue stays),
 * and the JSON contracts of products, orders, tickets, search and
 * understand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "souk/error.h"
#include "souk/store.h"
#include "pinecone_ctl.h"

#define BIG_ROWS 200000
#define WAID "15550001234"

typedef struct {
    int status;                 /* wait status */
    char *out, *err;
} run_t;

typedef struct {
    char data[64];              /* SOUK_DATA of the test */
    char files[64];             /* input files */
} fixture_t;

static char s_big[128];         /* the 200,000-row file, made once */

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void s_rmtree(const char *dir)
{
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *s_file(fixture_t *fx, const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", fx->files, name);
    s_write(path, text);
    return path;
}

static char *s_slurp_fd(int fd)
{
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    close(fd);
    return buf;
}

/* Starts SOUK_BIN with args (NULL-terminated) on data, with env ("K=V",
 * may be NULL) added; stdout and stderr go to memory files. */
static pid_t s_spawn(const char *data, const char *const *env, const char *const *args, int fds[2])
{
    const char *bin = getenv("SOUK_BIN");
    assert_non_null(bin);
    fds[0] = memfd_create("out", 0);
    fds[1] = memfd_create("err", 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("SOUK_DATA", data, 1);
        for (; env && *env; env++)
            putenv((char *)*env);
        dup2(fds[0], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        char *argv[32] = { (char *)bin };
        for (int i = 0; args[i] && i < 30; i++)
            argv[i + 1] = (char *)args[i];
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

static void s_collect(pid_t pid, int fds[2], run_t *r)
{
    assert_int_equal(waitpid(pid, &r->status, 0), pid);
    r->out = s_slurp_fd(fds[0]);
    r->err = s_slurp_fd(fds[1]);
}

static void s_run_env(const char *data, const char *const *env, run_t *r, ...)
{
    const char *args[32];
    va_list ap;
    va_start(ap, r);
    int n = 0;
    while (n < 31 && (args[n] = va_arg(ap, const char *)))
        n++;
    args[n] = NULL;
    va_end(ap);
    int fds[2];
    s_collect(s_spawn(data, env, args, fds), fds, r);
}

#define s_run(data, r, ...) s_run_env((data), NULL, (r), __VA_ARGS__, (const char *)NULL)

static void s_run_clear(run_t *r)
{
    free(r->out);
    free(r->err);
    *r = (run_t) { 0 };
}

static int s_exit(const run_t *r)
{
    return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
}

static void s_expect_exit(const run_t *r, int code)
{
    if (s_exit(r) != code)
        fail_msg("exit %d (status %d), expected %d\nstdout: %s\nstderr: %s", s_exit(r), r->status,
                 code, r->out, r->err);
}

static void s_expect_in(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("'%s' not in:\n%s", needle, text);
}

static store_t *s_store(const fixture_t *fx)
{
    store_t *st = NULL;
    char err[256];
    if (store_open("sqlite", fx->data, NULL, &st, err, sizeof err) != SOUK_OK)
        fail_msg("store_open: %s", err);
    return st;
}

static int64_t s_count(const fixture_t *fx)
{
    store_t *st = s_store(fx);
    int64_t n = -1;
    assert_int_equal(store_product_count(st, &n), SOUK_OK);
    store_close(&st);
    return n;
}

static int64_t s_price(const fixture_t *fx, const char *sku)
{
    store_t *st = s_store(fx);
    store_product_t p;
    int64_t cents = -1;
    if (store_product_get(st, sku, &p) == SOUK_OK) {
        cents = p.price_cents;
        store_product_clear(&p);
    }
    store_close(&st);
    return cents;
}

static json_t *s_json(const run_t *r)
{
    json_error_t e;
    json_t *doc = json_loads(r->out, 0, &e);
    if (!doc)
        fail_msg("not JSON (%s): %s", e.text, r->out);
    return doc;
}

/* `souk search <query> --json --limit 3` on data: its first result is sku. */
static void s_expect_first_hit(const char *data, const char *query, const char *sku)
{
    run_t r;
    s_run(data, &r, "search", query, "--json", "--limit", "3");
    s_expect_exit(&r, 0);
    json_t *doc = s_json(&r);
    json_t *first = json_array_get(json_object_get(doc, "results"), 0);
    assert_non_null(first);
    assert_string_equal(json_string_value(json_object_get(first, "sku")), sku);
    json_decref(doc);
    s_run_clear(&r);
}

/* ---- fixtures -------------------------------------------------------------- */

static void s_make_big(const char *path)
{
    static const char *const words[] = { "red", "blue", "running", "shoes", "mug", "lamp",
                                         "leather", "cotton", "steel", "garden", "travel", "bag" };
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "sku,name,description,price,category,stock,brand,tags,colour\n");
    for (int i = 0; i < BIG_ROWS; i++) {
        const char *a = words[i % 12], *b = words[(i / 12) % 12], *c = words[(i / 144) % 12];
        fprintf(f, "BIG-%06d,%s %s %s,\"A %s %s, made of %s.\",%d.%02d,cat-%d,%d,Brand %d,%s;%s,%s\n",
                i, a, b, c, a, b, c, 1 + i % 500, i % 100, i % 7, i % 50, i % 40, a, b, c);
    }
    assert_int_equal(fclose(f), 0);
}

static int s_group_setup(void **state)
{
    (void)state;
    char dir[] = "/tmp/sk-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    snprintf(s_big, sizeof s_big, "%s/big.csv", dir);
    s_make_big(s_big);
    return 0;
}

static int s_group_teardown(void **state)
{
    (void)state;
    char *slash = strrchr(s_big, '/');
    *slash = '\0';
    s_rmtree(s_big);
    return 0;
}

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    strcpy(fx->data, "/tmp/sk-XXXXXX");
    strcpy(fx->files, "/tmp/sk-XXXXXX");
    if (!fx || !mkdtemp(fx->data) || !mkdtemp(fx->files))
        return -1;
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    s_rmtree(fx->data);
    s_rmtree(fx->files);
    free(fx);
    return 0;
}

static const char s_csv[] =
    "\xEF\xBB\xBFsku,name,description,price,currency,category,stock,image_url,brand,tags,colour,warranty\r\n"
    "MUG-1,\"Mug, blue\",\"A blue ceramic mug.\r\nHolds 300 ml, says \"\"hi\"\".\",9.99,USD,kitchen,10,"
    "https://img.example/mug.png,Acme,mug;kitchen,blue,2 years\r\n"
    "LAMP-2,Desk lamp,A warm LED desk lamp,\"24,50\",usd,home,3,,Lumo,\"light,desk\",white,\r\n"
    "TEE-3,Cotton tee,Soft cotton t-shirt,15,USD,clothing,0,,,,black,\r\n";

/* ---- import ------------------------------------------------------------------ */

static void csv_import_keeps_attributes(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "import", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "imported 3 products (3 new, 0 updated)");
    s_run_clear(&r);

    store_t *st = s_store(fx);
    store_product_t p;
    assert_int_equal(store_product_get(st, "MUG-1", &p), SOUK_OK);
    assert_string_equal(p.name, "Mug, blue");
    assert_string_equal(p.description, "A blue ceramic mug.\nHolds 300 ml, says \"hi\".");
    assert_int_equal(p.price_cents, 999);
    assert_string_equal(p.tags, "[\"mug\",\"kitchen\"]");
    assert_string_equal(p.attrs, "{\"colour\":\"blue\",\"warranty\":\"2 years\"}");
    store_product_clear(&p);
    assert_int_equal(store_product_get(st, "LAMP-2", &p), SOUK_OK);
    assert_int_equal(p.price_cents, 2450);
    assert_string_equal(p.currency, "USD");
    assert_string_equal(p.attrs, "{\"colour\":\"white\"}");
    store_product_clear(&p);
    store_close(&st);

    /* the free attributes are searchable: the index was rebuilt */
    s_expect_first_hit(fx->data, "white", "LAMP-2");
}

static void json_and_json_lines_import(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "import", s_file(fx, "a.json",
        "[{\"sku\":\"J-1\",\"name\":\"Lamp\",\"price\":19.99,\"dimensions\":{\"w\":10},\"rating\":4.5},\n"
        " {\"sku\":\"J-2\",\"name\":\"Chair\",\"price\":\"45.00\",\"stock\":\"4\",\"tags\":[\"wood\"]}]\n"));
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "imported 2 products (2 new, 0 updated)");
    s_run_clear(&r);
    s_run(fx->data, &r, "import", s_file(fx, "b.jsonl",
        "{\"sku\":\"L-1\",\"name\":\"Rug\",\"price\":80}\n\n{\"sku\":\"J-1\",\"name\":\"Lamp\",\"price\":17.5}\n"));
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "imported 2 products (1 new, 1 updated)");
    s_run_clear(&r);
    assert_int_equal(s_count(fx), 3);
    assert_int_equal(s_price(fx, "J-1"), 1750);

    store_t *st = s_store(fx);
    store_product_t p;
    assert_int_equal(store_product_get(st, "J-2", &p), SOUK_OK);
    assert_int_equal(p.stock, 4);
    store_product_clear(&p);
    store_close(&st);
}

static void upsert_updates_by_sku(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "import", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_run_clear(&r);
    s_run(fx->data, &r, "import", s_file(fx, "change.csv",
        "sku,name,price,stock\nMUG-1,Mug,11.50,4\nTEE-3,Cotton tee,15,9\n"));
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "imported 2 products (0 new, 2 updated)");
    s_run_clear(&r);
    assert_int_equal(s_count(fx), 3);
    assert_int_equal(s_price(fx, "MUG-1"), 1150);
    assert_int_equal(s_price(fx, "LAMP-2"), 2450);     /* not in the file: untouched */
}

static void bad_rows_import_nothing(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "import", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_run_clear(&r);
    s_run(fx->data, &r, "import", s_file(fx, "bad.csv",
        "sku,name,price,stock,currency\n"
        "MUG-1,Mug,1.00,1,USD\n"
        "NEW-1,New,abc,1,USD\n"
        "NEW-2,New,2.00,-4,USD\n"
        "NEW-3,,3.00,1,USD\n"
        "NEW-4,New,4.00,1,dollars\n"
        "NEW-5,New,5.00,1,USD\n"));
    assert_int_not_equal(s_exit(&r), 0);
    s_expect_in(r.err, "line 3: price: not a number ('abc')");
    s_expect_in(r.err, "line 4: stock: negative ('-4')");
    s_expect_in(r.err, "line 5: name: missing");
    s_expect_in(r.err, "line 6: currency: not a three-letter code ('dollars')");
    s_expect_in(r.err, "4 of 6 records rejected; nothing imported");
    assert_null(strstr(r.out, "imported"));
    s_run_clear(&r);
    assert_int_equal(s_count(fx), 3);
    assert_int_equal(s_price(fx, "MUG-1"), 999);       /* the good row was not written either */
    assert_int_equal(s_price(fx, "NEW-5"), -1);
}

static void duplicate_sku_rejected(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "import", s_file(fx, "dup.jsonl",
        "{\"sku\":\"D-1\",\"name\":\"One\",\"price\":1}\n"
        "{\"sku\":\"D-2\",\"name\":\"Two\",\"price\":2}\n"
        "{\"sku\":\"D-1\",\"name\":\"Again\",\"price\":3}\n"));
    assert_int_equal(s_exit(&r), 1);
    s_expect_in(r.err, "line 3: sku 'D-1' is also on line 1");
    s_run_clear(&r);
    assert_int_equal(s_count(fx), 0);
}

static void dry_run_writes_nothing(void **state)
{
    fixture_t *fx = *state;
    char db[128];
    struct stat st;
    snprintf(db, sizeof db, "%s/souk.db", fx->data);
    run_t r;
    s_run(fx->data, &r, "import", "--dry-run", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "dry run: 3 products valid (3 new, 0 updated); nothing written");
    s_run_clear(&r);
    assert_int_not_equal(stat(db, &st), 0);             /* not even a database */

    s_run(fx->data, &r, "import", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_run_clear(&r);
    s_run(fx->data, &r, "import", "--dry-run", s_file(fx, "c.csv",
        "sku,name,price\nMUG-1,Mug,1\nNEW-1,New,2\n"));
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "dry run: 2 products valid (1 new, 1 updated); nothing written");
    s_run_clear(&r);
    assert_int_equal(s_count(fx), 3);
    assert_int_equal(s_price(fx, "MUG-1"), 999);

    s_run(fx->data, &r, "import", "--dry-run", s_file(fx, "bad.csv", "sku,name,price\nX,Y,zz\n"));
    s_expect_exit(&r, 1);
    s_expect_in(r.err, "line 2: price: not a number ('zz')");
    s_expect_in(r.err, "nothing would be imported");
    s_run_clear(&r);
}

static void if_empty_imports_once(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "products", "--count");
    s_expect_exit(&r, 0);
    assert_string_equal(r.out, "0\n");
    s_run_clear(&r);
    s_run(fx->data, &r, "import", "--if-empty", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "imported 3 products");
    s_run_clear(&r);
    s_run(fx->data, &r, "import", "--if-empty", s_file(fx, "c.csv", "sku,name,price\nX,Y,1\n"));
    s_expect_exit(&r, 0);
    s_expect_in(r.err, "--if-empty imports nothing");
    s_run_clear(&r);
    assert_int_equal(s_count(fx), 3);
}

static void usage_and_unreadable_file(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "import");
    s_expect_exit(&r, 2);
    s_run_clear(&r);
    s_run(fx->data, &r, "import", "/nonexistent/file.csv");
    s_expect_exit(&r, 1);
    s_expect_in(r.err, "cannot read /nonexistent/file.csv");
    s_run_clear(&r);
}

/* ---- scale and crashes ---------------------------------------------------------- */

static void huge_file_one_transaction(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    double t0 = s_now();
    s_run(fx->data, &r, "import", s_big);
    double secs = s_now() - t0;
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "imported 200000 products (200000 new, 0 updated)");
    assert_null(strchr(r.err, '\r'));                  /* no progress bar off a terminal */
    printf("# import of %d products (read + one transaction + search index): %.2f s, "
           "%.0f products/s\n# %s", BIG_ROWS, secs, BIG_ROWS / secs, r.err);
    s_run_clear(&r);
    assert_int_equal(s_count(fx), BIG_ROWS);
    assert_int_equal(s_price(fx, "BIG-199999"), (1 + 199999 % 500) * 100 + 199999 % 100);

    s_run(fx->data, &r, "search", "BIG-123456", "--json", "--limit", "1");
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "\"sku\":\"BIG-123456\"");
    s_run_clear(&r);
}

/* A small catalogue imported first, and what must survive a failed import. */
static void s_old_catalogue(fixture_t *fx, struct stat *index_before)
{
    run_t r;
    s_run(fx->data, &r, "import", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_run_clear(&r);
    char path[128];
    snprintf(path, sizeof path, "%s/products.vindex", fx->data);
    assert_int_equal(stat(path, index_before), 0);
}

static void s_expect_old_catalogue(fixture_t *fx, const struct stat *index_before)
{
    assert_int_equal(s_count(fx), 3);
    assert_int_equal(s_price(fx, "MUG-1"), 999);
    assert_int_equal(s_price(fx, "BIG-000001"), -1);
    char path[128];
    struct stat now;
    snprintf(path, sizeof path, "%s/products.vindex", fx->data);
    assert_int_equal(stat(path, &now), 0);
    assert_int_equal(now.st_ino, index_before->st_ino);
    assert_int_equal(now.st_size, index_before->st_size);
}

static void crash_before_commit_keeps_old_catalogue(void **state)
{
    fixture_t *fx = *state;
    struct stat index_before;
    s_old_catalogue(fx, &index_before);
    /* the big file overwrites MUG-1 too, so a half-applied batch would show */
    char *path = s_file(fx, "mixed.csv", "sku,name,price\nMUG-1,Mug,1.00\n");
    FILE *f = fopen(path, "a");
    for (int i = 0; i < 50000; i++)
        fprintf(f, "BIG-%06d,Thing %d,%d.00\n", i, i, 1 + i % 90);
    fclose(f);
    const char *const env[] = { "SOUK_IMPORT_CRASH=before-commit", NULL };
    run_t r;
    s_run_env(fx->data, env, &r, "import", path, (const char *)NULL);
    assert_true(WIFSIGNALED(r.status));
    assert_int_equal(WTERMSIG(r.status), SIGKILL);
    s_run_clear(&r);
    s_expect_old_catalogue(fx, &index_before);

    /* and the store takes the same import after the crash */
    s_run(fx->data, &r, "import", path);
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "imported 50001 products (50000 new, 1 updated)");
    s_run_clear(&r);
    assert_int_equal(s_price(fx, "MUG-1"), 100);
}

static void kill_while_reading_keeps_old_catalogue(void **state)
{
    fixture_t *fx = *state;
    struct stat index_before;
    s_old_catalogue(fx, &index_before);
    const char *const args[] = { "import", s_big, NULL };
    int fds[2];
    pid_t pid = s_spawn(fx->data, NULL, args, fds);
    usleep(100 * 1000);         /* reading 200,000 rows takes several times this */
    kill(pid, SIGKILL);
    run_t r;
    s_collect(pid, fds, &r);
    assert_true(WIFSIGNALED(r.status));
    s_run_clear(&r);
    s_expect_old_catalogue(fx, &index_before);
}

/* ---- the merchant's commands ------------------------------------------------------ */

static void s_order_and_ticket(fixture_t *fx, char order_id[32], char ticket_id[32])
{
    store_t *st = s_store(fx);
    store_order_line_t lines[] = { { "MUG-1", 2 }, { "LAMP-2", 1 } };
    store_order_request_t req = { .waid = WAID, .idem_key = "test:order:1", .lines = lines,
                                  .n_lines = 2, .now_ms = 1735787045000 };
    store_order_t o;
    assert_int_equal(store_order_place(st, &req, &o, NULL), SOUK_OK);
    snprintf(order_id, 32, "%s", o.order_id);
    store_order_clear(&o);
    store_ticket_t t = { .waid = WAID, .subject = "Broken mug", .message = "It arrived cracked.",
                         .order_id = order_id, .idem_key = "test:ticket:1",
                         .created_ms = 1735787100000 };
    store_ticket_t out;
    assert_int_equal(store_ticket_put(st, &t, &out), SOUK_OK);
    snprintf(ticket_id, 32, "%s", out.ticket_id);
    store_ticket_clear(&out);
    store_close(&st);
}

static const char *s_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("no string '%s'", key);
    return json_string_value(v);
}

static void orders_and_tickets_json(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "import", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_run_clear(&r);
    char order_id[32], ticket_id[32];
    s_order_and_ticket(fx, order_id, ticket_id);

    s_run(fx->data, &r, "orders", "--json");
    s_expect_exit(&r, 0);
    json_t *doc = s_json(&r);
    json_t *o = json_array_get(json_object_get(doc, "orders"), 0);
    assert_non_null(o);
    assert_string_equal(s_str(o, "id"), order_id);
    assert_string_equal(s_str(o, "user"), WAID);
    assert_string_equal(s_str(o, "status"), "pending");
    assert_string_equal(s_str(o, "currency"), "USD");
    assert_string_equal(s_str(o, "created"), "2025-01-02T03:04:05Z");
    assert_true(json_is_number(json_object_get(o, "total")));
    assert_int_equal(json_integer_value(json_object_get(o, "total_cents")), 2 * 999 + 2450);
    json_t *items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 2);
    json_t *it = json_array_get(items, 0);
    assert_string_equal(s_str(it, "sku"), "MUG-1");
    assert_int_equal(json_integer_value(json_object_get(it, "quantity")), 2);
    assert_string_equal(s_str(it, "name"), "Mug, blue");
    assert_true(json_number_value(json_object_get(it, "unit_price")) > 9.98);
    json_decref(doc);
    s_run_clear(&r);

    s_run(fx->data, &r, "tickets", "--json");
    s_expect_exit(&r, 0);
    doc = s_json(&r);
    json_t *t = json_array_get(json_object_get(doc, "tickets"), 0);
    assert_non_null(t);
    assert_string_equal(s_str(t, "id"), ticket_id);
    assert_string_equal(s_str(t, "user"), WAID);
    assert_string_equal(s_str(t, "subject"), "Broken mug");
    assert_string_equal(s_str(t, "message"), "It arrived cracked.");
    assert_string_equal(s_str(t, "order_id"), order_id);
    assert_string_equal(s_str(t, "status"), "open");
    assert_string_equal(s_str(t, "created"), "2025-01-02T03:05:00Z");
    json_decref(doc);
    s_run_clear(&r);

    /* the tables mask the customer's number */
    s_run(fx->data, &r, "orders");
    s_expect_exit(&r, 0);
    s_expect_in(r.out, order_id);
    s_expect_in(r.out, "2 x MUG-1, 1 x LAMP-2");
    assert_null(strstr(r.out, WAID));
    s_run_clear(&r);
    s_run(fx->data, &r, "tickets");
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "Broken mug");
    assert_null(strstr(r.out, WAID));
    s_run_clear(&r);
}

static void products_search_understand_json(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "import", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_run_clear(&r);

    s_run(fx->data, &r, "products", "--json");
    s_expect_exit(&r, 0);
    json_t *doc = s_json(&r);
    json_t *list = json_object_get(doc, "products");
    assert_int_equal(json_array_size(list), 3);
    json_t *lamp = json_array_get(list, 0);     /* by SKU: LAMP-2, MUG-1, TEE-3 */
    assert_string_equal(s_str(lamp, "sku"), "LAMP-2");
    assert_int_equal(json_integer_value(json_object_get(lamp, "price_cents")), 2450);
    assert_string_equal(s_str(json_object_get(lamp, "attrs"), "colour"), "white");
    assert_string_equal(json_string_value(json_array_get(json_object_get(lamp, "tags"), 1)), "desk");
    json_decref(doc);
    s_run_clear(&r);

    s_run(fx->data, &r, "products");
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "24.50 USD");
    s_expect_in(r.out, "3 products");
    s_run_clear(&r);

    s_run(fx->data, &r, "search", "blue mug", "--json", "--limit", "2");
    s_expect_exit(&r, 0);
    doc = s_json(&r);
    assert_string_equal(s_str(doc, "query"), "blue mug");
    json_t *hit = json_array_get(json_object_get(doc, "results"), 0);
    assert_non_null(hit);
    assert_true(json_array_size(json_object_get(doc, "results")) <= 2);
    assert_string_equal(s_str(hit, "sku"), "MUG-1");
    assert_string_equal(s_str(hit, "name"), "Mug, blue");
    assert_string_equal(s_str(hit, "currency"), "USD");
    assert_true(json_number_value(json_object_get(hit, "price")) > 9.98);
    assert_true(json_is_number(json_object_get(hit, "score")));
    json_decref(doc);
    s_run_clear(&r);

    s_run(fx->data, &r, "search", "mug");
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "MUG-1");
    s_run_clear(&r);

    s_run(fx->data, &r, "understand", "where is my order", "--json");
    s_expect_exit(&r, 0);
    doc = s_json(&r);
    assert_string_equal(s_str(doc, "intent"), "order_status");
    assert_true(json_is_number(json_object_get(doc, "confidence")));
    assert_true(json_is_object(json_object_get(doc, "slots")));
    json_decref(doc);
    s_run_clear(&r);
}

static void empty_store_prints_empty_json(void **state)
{
    fixture_t *fx = *state;
    static const char *const cmds[][2] = { { "orders", "{\"orders\":[]}\n" },
                                           { "tickets", "{\"tickets\":[]}\n" },
                                           { "products", "{\"products\":[]}\n" } };
    run_t r;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        s_run(fx->data, &r, cmds[i][0], "--json");
        s_expect_exit(&r, 0);
        assert_string_equal(r.out, cmds[i][1]);
        s_run_clear(&r);
    }
    s_run(fx->data, &r, "search", "anything", "--json");
    s_expect_exit(&r, 0);
    json_t *doc = s_json(&r);
    assert_int_equal(json_array_size(json_object_get(doc, "results")), 0);
    json_decref(doc);
    s_run_clear(&r);
    s_run(fx->data, &r, "search", "--limit", "0", "x");
    s_expect_exit(&r, 2);
    s_run_clear(&r);
}

static void demo_catalogue_imports(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    s_run(fx->data, &r, "import", SOUK_SRC_DIR "/data/demo/products.jsonl");
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "imported 194 products (194 new, 0 updated)");
    s_run_clear(&r);
    store_t *st = s_store(fx);
    store_product_t p;
    assert_int_equal(store_product_get(st, "BEA-ESS-ESS-001", &p), SOUK_OK);
    assert_string_equal(p.name, "Essence Mascara Lash Princess");
    assert_int_equal(p.price_cents, 999);
    assert_non_null(strstr(p.attrs, "\"warranty\":\"1 week warranty\""));
    assert_non_null(strstr(p.attrs, "\"dimensions\":\"15.14 x 13.08 x 22.99 cm\""));
    store_product_clear(&p);
    store_close(&st);
    s_run(fx->data, &r, "search", "running shoes", "--json", "--limit", "5");
    s_expect_exit(&r, 0);
    s_expect_in(r.out, "\"category\":\"mens-shoes\"");
    s_run_clear(&r);
}

/* ---- SOUK_VECTOR=pinecone ------------------------------------------------------- */

static void pinecone_import_and_search(void **state)
{
    fixture_t *fx = *state;
    run_t r;
    const char *const unset[] = { "SOUK_VECTOR=pinecone", NULL };
    s_run_env(fx->data, unset, &r, "search", "mug", (const char *)NULL);
    s_expect_exit(&r, 78);
    s_expect_in(r.err, "PINECONE_INDEX_HOST");
    s_run_clear(&r);

    if (pc_fake_start(SOUK_SRC_DIR) != 0)
        fail_msg("the fake Pinecone did not start");
    setenv("SOUK_PINECONE_NAMESPACE", "import-test", 1);
    s_run(fx->data, &r, "import", s_file(fx, "shop.csv", s_csv));
    s_expect_exit(&r, 0);
    s_run_clear(&r);
    assert_int_equal(pc_fake_vectors("import-test"), 3);
    size_t from = pc_fake_requests();
    s_expect_first_hit(fx->data, "white", "LAMP-2");
    assert_int_equal(pc_fake_count("/query", "import-test", from, NULL), 1);
    pc_fake_stop();
    unsetenv("SOUK_VECTOR");
    unsetenv("PINECONE_INDEX_HOST");
    unsetenv("PINECONE_API_KEY");
    unsetenv("SOUK_PINECONE_NAMESPACE");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(csv_import_keeps_attributes),
        T(json_and_json_lines_import),
        T(upsert_updates_by_sku),
        T(bad_rows_import_nothing),
        T(duplicate_sku_rejected),
        T(dry_run_writes_nothing),
        T(if_empty_imports_once),
        T(usage_and_unreadable_file),
        T(huge_file_one_transaction),
        T(crash_before_commit_keeps_old_catalogue),
        T(kill_while_reading_keeps_old_catalogue),
        T(orders_and_tickets_json),
        T(products_search_understand_json),
        T(empty_store_prints_empty_json),
        T(demo_catalogue_imports),
        T(pinecone_import_and_search),
    };
#undef T
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
