/* The store on embedded SQLite: data_dir/souk.db in WAL mode, opened by
 * every process that needs it (hundreds of session actors at once).
 *
 * What shapes this file:
 * - Writers take turns. SQLite's own back-off sleeps a loser 0.4-2.1 s,
 *   which blows a 3 s reply budget; so writers queue (s_queue_*) for the
 *   right to wait for SQLite's lock, and the one at the head waits in
 *   s_busy: a few yields, then sleeps of 50 us growing to 1 ms, until the
 *   handle's deadline. Every transaction that writes starts with BEGIN
 *   IMMEDIATE: it takes the lock once, instead of reading first and failing
 *   to upgrade later.
 * - Statements are prepared on first use and kept for the handle's life, so
 *   a session actor only pays for the dozen it uses (memory is counted).
 * - Lists run page by page (keyset on seq/rowid, column 0 of every listed
 *   row) and call back with no statement open.
 * - Checkpoints: see s_wal_hook.
 * - The schema is an ordered array of migrations; PRAGMA user_version says
 *   how many are applied. They run in one transaction at open; whoever gets
 *   the lock first applies them and the others find nothing left to do. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* pthread_mutex_clocklock: a deadline immune to clock steps */
#endif
#include "souk/store.h"
#include "souk/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE_ROWS 32
#define WAL_CHECKPOINT_FRAMES 1000  /* SQLite's own autocheckpoint point */
#define WAL_RESTART_FRAMES 4000     /* 16 MB of 4 KiB pages */
#define WAL_SIZE_LIMIT "16777216"
/* 5 base32 characters: ids collide now and then once there are thousands. */
#define ID_TRIES 8

/* ---- schema -------------------------------------------------------------- */

static const char *const s_migrations[] = {
    /* 1: everything. Partial indexes play DynamoDB's sparse GSIs. */
    "CREATE TABLE users("
    "  waid TEXT PRIMARY KEY, profile_name TEXT, from_addr TEXT, last_media TEXT,"
    "  first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,"
    "  last_inbound_ms INTEGER NOT NULL DEFAULT 0,"
    "  opted_out INTEGER NOT NULL DEFAULT 0, opt_changed_ms INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE inbound("
    "  seq INTEGER PRIMARY KEY, msg_sid TEXT NOT NULL UNIQUE, waid TEXT NOT NULL,"
    "  body TEXT, media TEXT, params TEXT, received_ms INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'received', turn_sid TEXT);"
    "CREATE INDEX inbound_pending ON inbound(waid, seq) WHERE state = 'received';"
    "CREATE TABLE history("
    "  seq INTEGER PRIMARY KEY, waid TEXT NOT NULL, dir TEXT NOT NULL, msg_sid TEXT,"
    "  text TEXT NOT NULL, ts_ms INTEGER NOT NULL);"
    "CREATE INDEX history_waid ON history(waid, seq);"
    "CREATE UNIQUE INDEX history_dedupe ON history(waid, msg_sid, dir) WHERE msg_sid IS NOT NULL;"
    "CREATE TABLE outbox("
    "  seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, waid TEXT, to_addr TEXT,"
    "  body TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, twilio_sid TEXT,"
    "  error_code INTEGER NOT NULL DEFAULT 0, error_reason TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX outbox_queued ON outbox(next_attempt_ms, seq) WHERE state = 'queued';"
    "CREATE INDEX outbox_sending ON outbox(next_attempt_ms, seq) WHERE state = 'sending';"
    "CREATE INDEX outbox_offered ON outbox(waid, seq) WHERE state = 'offered';"
    "CREATE INDEX outbox_sid ON outbox(twilio_sid) WHERE twilio_sid IS NOT NULL;"
    "CREATE TABLE delivery("
    "  twilio_sid TEXT NOT NULL, status TEXT NOT NULL, error_code INTEGER NOT NULL,"
    "  ts_ms INTEGER NOT NULL, PRIMARY KEY (twilio_sid, status)) WITHOUT ROWID;"
    "CREATE TABLE idem("
    "  key TEXT PRIMARY KEY, result TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE products("
    "  sku TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT,"
    "  price_cents INTEGER NOT NULL CHECK (price_cents >= 0), currency TEXT NOT NULL,"
    "  category TEXT, image_url TEXT, brand TEXT, tags TEXT, attrs TEXT,"
    "  stock INTEGER NOT NULL CHECK (stock >= 0), updated_ms INTEGER NOT NULL);"
    "CREATE TABLE orders("
    "  seq INTEGER PRIMARY KEY, order_id TEXT NOT NULL UNIQUE, waid TEXT NOT NULL,"
    "  items TEXT NOT NULL, total_cents INTEGER NOT NULL, currency TEXT NOT NULL,"
    "  status TEXT NOT NULL, note TEXT, idem_key TEXT NOT NULL UNIQUE,"
    "  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX orders_waid ON orders(waid, seq);"
    "CREATE TABLE tickets("
    "  seq INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL UNIQUE, waid TEXT NOT NULL,"
    "  subject TEXT NOT NULL, message TEXT NOT NULL, order_id TEXT, status TEXT NOT NULL,"
    "  idem_key TEXT NOT NULL UNIQUE, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX tickets_waid ON tickets(waid, seq);"
    "CREATE TABLE leases("
    "  name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_ms INTEGER NOT NULL) WITHOUT ROWID;",
    /* 2: the agent's dialog state, one opaque JSON document per user. */
    "CREATE TABLE user_state("
    "  waid TEXT PRIMARY KEY, state TEXT NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;",
};
#define SCHEMA_VERSION ((int) (sizeof s_migrations / sizeof *s_migrations))

/* ---- statements ------------------------------------------------------------
 * Column 0 of a row statement is its seq (rowid) for paging; the readers
 * read from column 1. Lists name their parameters :waid, :now, :after and
 * :limit; the others are positional. */

#define USER_COLS "0, waid, profile_name, from_addr, last_media, first_seen_ms, last_seen_ms," \
                  " last_inbound_ms, opted_out, opt_changed_ms"
#define INBOUND_COLS "seq, msg_sid, waid, body, media, params, received_ms, state, turn_sid"
#define HISTORY_COLS "seq, waid, dir, msg_sid, text, ts_ms"
#define OUTBOX_COLS "seq, key, waid, to_addr, body, kind, state, twilio_sid, error_code," \
                    " error_reason, attempts, next_attempt_ms, created_ms, updated_ms"
#define PRODUCT_COLS "rowid, sku, name, description, price_cents, currency, category," \
                     " image_url, brand, tags, attrs, stock, updated_ms"
#define ORDER_COLS "seq, order_id, waid, items, total_cents, currency, status, note, idem_key," \
                   " created_ms, updated_ms"
#define TICKET_COLS "seq, ticket_id, waid, subject, message, order_id, status, idem_key," \
                    " created_ms, updated_ms"

#define S_QUERIES(Q)                                                                          \
    Q(BEGIN, "BEGIN IMMEDIATE")                                                               \
    Q(COMMIT, "COMMIT")                                                                       \
    Q(ROLLBACK, "ROLLBACK")                                                                   \
    Q(SAVEPOINT, "SAVEPOINT step")                                                            \
    Q(RELEASE, "RELEASE step")                                                                \
    Q(ROLLBACK_TO, "ROLLBACK TO step")                                                        \
    Q(USER_SEEN, "INSERT INTO users(waid, profile_name, from_addr, last_media, first_seen_ms," \
      " last_seen_ms, last_inbound_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?5, CASE WHEN ?6 THEN ?5 ELSE 0 END)" \
      " ON CONFLICT(waid) DO UPDATE SET profile_name = coalesce(?2, profile_name),"          \
      " from_addr = coalesce(?3, from_addr), last_media = coalesce(?4, last_media),"         \
      " last_seen_ms = ?5, last_inbound_ms = CASE WHEN ?6 THEN ?5 ELSE last_inbound_ms END") \
    Q(USER_GET, "SELECT " USER_COLS " FROM users WHERE waid = ?1")                            \
    Q(USER_OPT, "INSERT INTO users(waid, first_seen_ms, last_seen_ms, opted_out, opt_changed_ms)" \
      " VALUES(?1, ?3, ?3, ?2, ?3) ON CONFLICT(waid) DO UPDATE SET opted_out = ?2,"          \
      " opt_changed_ms = CASE WHEN opted_out <> ?2 THEN ?3 ELSE opt_changed_ms END")         \
    Q(INBOUND_PUT, "INSERT INTO inbound(msg_sid, waid, body, media, params, received_ms)"     \
      " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(msg_sid) DO NOTHING")                      \
    Q(INBOUND_GET, "SELECT " INBOUND_COLS " FROM inbound WHERE msg_sid = ?1")                 \
    Q(INBOUND_FINISH, "UPDATE inbound SET state = ?2, turn_sid = ?3"                          \
      " WHERE msg_sid = ?1 AND state = 'received'")                                           \
    Q(INBOUND_PENDING, "SELECT " INBOUND_COLS " FROM inbound WHERE waid = :waid"              \
      " AND state = 'received' AND seq > :after ORDER BY seq LIMIT :limit")                   \
    Q(INBOUND_STALE, "SELECT DISTINCT waid FROM inbound WHERE state = 'received'"             \
      " AND received_ms < ?1 LIMIT ?2")                                                       \
    Q(HISTORY_ADD, "INSERT INTO history(waid, dir, msg_sid, text, ts_ms)"                     \
      " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING")                                   \
    Q(HISTORY_TRIM, "DELETE FROM history WHERE waid = ?1 AND seq <= (SELECT seq FROM history" \
      " WHERE waid = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)")                                \
    Q(HISTORY_RECENT, "SELECT * FROM (SELECT " HISTORY_COLS " FROM history WHERE waid = :waid" \
      " ORDER BY seq DESC LIMIT :limit) ORDER BY seq")                                        \
    Q(OUTBOX_PUT, "INSERT INTO outbox(key, waid, to_addr, body, kind, state, next_attempt_ms," \
      " created_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)"                   \
      " ON CONFLICT(key) DO NOTHING")                                                         \
    Q(OUTBOX_GET, "SELECT " OUTBOX_COLS " FROM outbox WHERE key = ?1")                        \
    Q(OUTBOX_BY_SID, "SELECT " OUTBOX_COLS " FROM outbox WHERE twilio_sid = ?1"               \
      " ORDER BY seq LIMIT 1")                                                                \
    Q(OUTBOX_MOVE, "UPDATE outbox SET state = ?3, twilio_sid = coalesce(?4, twilio_sid),"     \
      " error_code = CASE WHEN ?5 <> 0 THEN ?5 ELSE error_code END,"                         \
      " error_reason = coalesce(?6, error_reason), attempts = attempts + ?7,"                \
      " next_attempt_ms = CASE WHEN ?8 > 0 THEN ?8 ELSE next_attempt_ms END,"                \
      " updated_ms = CASE WHEN ?9 > 0 THEN ?9 ELSE updated_ms END"                            \
      " WHERE key = ?1 AND state = ?2")                                                       \
    Q(OUTBOX_SET_STATE, "UPDATE outbox SET state = ?2,"                                       \
      " error_code = CASE WHEN ?3 <> 0 THEN ?3 ELSE error_code END,"                         \
      " updated_ms = max(updated_ms, ?4) WHERE key = ?1")                                     \
    Q(OUTBOX_DUE_QUEUED, "SELECT " OUTBOX_COLS " FROM outbox WHERE state = 'queued'"          \
      " AND next_attempt_ms <= :now ORDER BY next_attempt_ms, seq LIMIT :limit")              \
    Q(OUTBOX_DUE_SENDING, "SELECT " OUTBOX_COLS " FROM outbox WHERE state = 'sending'"        \
      " AND next_attempt_ms <= :now ORDER BY next_attempt_ms, seq LIMIT :limit")              \
    Q(OUTBOX_OFFERED, "SELECT " OUTBOX_COLS " FROM outbox WHERE waid = :waid"                 \
      " AND state = 'offered' AND seq > :after ORDER BY seq LIMIT :limit")                    \
    Q(OUTBOX_LIST_ALL, "SELECT " OUTBOX_COLS " FROM outbox WHERE seq < :after"                \
      " ORDER BY seq DESC LIMIT :limit")                                                      \
    Q(DELIVERY_ADD, "INSERT INTO delivery(twilio_sid, status, error_code, ts_ms)"             \
      " VALUES(?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING")                                       \
    Q(DELIVERY_LIST, "SELECT status, error_code, ts_ms FROM delivery WHERE twilio_sid = ?1"   \
      " ORDER BY ts_ms")                                                                      \
    Q(USER_STATE_GET, "SELECT state FROM user_state WHERE waid = ?1")                        \
    Q(USER_STATE_PUT, "INSERT INTO user_state(waid, state, updated_ms) VALUES(?1, ?2, ?3)"   \
      " ON CONFLICT(waid) DO UPDATE SET state = ?2, updated_ms = ?3")                         \
    Q(IDEM_GET, "SELECT result FROM idem WHERE key = ?1")                                     \
    Q(IDEM_PUT, "INSERT INTO idem(key, result, created_ms) VALUES(?1, ?2, ?3)"                \
      " ON CONFLICT(key) DO NOTHING")                                                         \
    Q(PRODUCT_UPSERT, "INSERT INTO products(sku, name, description, price_cents, currency,"   \
      " category, image_url, brand, tags, attrs, stock, updated_ms)"                         \
      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT(sku) DO UPDATE" \
      " SET name = ?2, description = ?3, price_cents = ?4, currency = ?5, category = ?6,"    \
      " image_url = ?7, brand = ?8, tags = ?9, attrs = ?10, stock = ?11, updated_ms = ?12")   \
    Q(PRODUCT_GET, "SELECT " PRODUCT_COLS " FROM products WHERE sku = ?1")                    \
    Q(PRODUCT_EACH, "SELECT " PRODUCT_COLS " FROM products WHERE rowid > :after"              \
      " ORDER BY rowid LIMIT :limit")                                                         \
    Q(PRODUCT_COUNT, "SELECT count(*) FROM products")                                         \
    Q(OUTBOX_COUNT, "SELECT state, count(*) FROM outbox GROUP BY state")                      \
    Q(PRODUCT_EXISTS, "SELECT 1 FROM products WHERE sku = ?1")                                \
    Q(PRODUCT_TAKE, "UPDATE products SET stock = stock - ?2 WHERE sku = ?1 AND stock >= ?2")  \
    Q(PRODUCT_GIVE, "UPDATE products SET stock = stock + ?2 WHERE sku = ?1")                  \
    Q(PRODUCT_LINE, "SELECT json_object('sku', sku, 'name', name, 'qty', ?2,"                \
      " 'unit_cents', price_cents), price_cents, currency FROM products WHERE sku = ?1")      \
    Q(ORDER_PUT, "INSERT INTO orders(order_id, waid, items, total_cents, currency, status,"   \
      " note, idem_key, created_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)" \
      " ON CONFLICT DO NOTHING")                                                              \
    Q(ORDER_GET, "SELECT " ORDER_COLS " FROM orders WHERE order_id = ?1"                      \
      " AND waid = coalesce(?2, waid)")                                                       \
    Q(ORDER_BY_IDEM, "SELECT " ORDER_COLS " FROM orders WHERE idem_key = ?1")                 \
    Q(ORDER_MOVE, "UPDATE orders SET status = ?3, updated_ms = ?4"                            \
      " WHERE order_id = ?1 AND status = ?2")                                                 \
    Q(ORDER_LIST_USER, "SELECT " ORDER_COLS " FROM orders WHERE waid = :waid"                 \
      " AND seq < :after ORDER BY seq DESC LIMIT :limit")                                     \
    Q(ORDER_LIST_ALL, "SELECT " ORDER_COLS " FROM orders WHERE seq < :after"                  \
      " ORDER BY seq DESC LIMIT :limit")                                                      \
    Q(TICKET_PUT, "INSERT INTO tickets(ticket_id, waid, subject, message, order_id, status,"  \
      " idem_key, created_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?7)"     \
      " ON CONFLICT DO NOTHING")                                                              \
    Q(TICKET_GET, "SELECT " TICKET_COLS " FROM tickets WHERE ticket_id = ?1 AND waid = ?2")   \
    Q(TICKET_BY_IDEM, "SELECT " TICKET_COLS " FROM tickets WHERE idem_key = ?1")              \
    Q(TICKET_CLOSE, "UPDATE tickets SET status = 'closed', updated_ms = ?3"                   \
      " WHERE ticket_id = ?1 AND waid = ?2 AND status = 'open'")                              \
    Q(TICKET_LIST_USER, "SELECT " TICKET_COLS " FROM tickets WHERE waid = :waid"              \
      " AND seq < :after ORDER BY seq DESC LIMIT :limit")                                     \
    Q(TICKET_LIST_ALL, "SELECT " TICKET_COLS " FROM tickets WHERE seq < :after"               \
      " ORDER BY seq DESC LIMIT :limit")                                                      \
    Q(LEASE_ACQUIRE, "INSERT INTO leases(name, owner, expires_ms) VALUES(?1, ?2, ?3 + ?4)"    \
      " ON CONFLICT(name) DO UPDATE SET owner = ?2, expires_ms = ?3 + ?4"                    \
      " WHERE owner = ?2 OR expires_ms <= ?3")                                                \
    Q(LEASE_RELEASE, "DELETE FROM leases WHERE name = ?1 AND owner = ?2")

typedef enum {
#define Q(name, sql) Q_##name,
    S_QUERIES(Q)
#undef Q
    Q_COUNT
} s_query_t;

static const char *const s_sql[] = {
#define Q(name, sql) sql,
    S_QUERIES(Q)
#undef Q
};

typedef struct {
    uint32_t magic;             /* QUEUE_MAGIC once mutex is ready */
    pthread_mutex_t mutex;
} s_queue_t;
#define QUEUE_MAGIC 0x534b5131u

struct store_impl {
    sqlite3 *db;
    sqlite3_stmt *stmt[Q_COUNT];
    s_queue_t *queue;           /* shared by every process: data_dir/souk.db.lock */
    bool queued;                /* this handle holds queue->mutex */
    bool batch;                 /* in store_batch_begin's transaction: see s_begin */
    int wal_frames;             /* WAL size after our last commit, for s_checkpoint */
    int busy_timeout_ms;
    int history_keep;
    int64_t busy_since_ns;
    uint32_t jitter;            /* xorshift state: spreads the sleepers apart */
    char errmsg[200];
};

static int64_t s_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- writer queue ----------------------------------------------------------
 * SQLite's lock is unfair to waiters: at saturation one polling every
 * millisecond kept finding it taken again by fresher writers. So a writer
 * first takes a robust process-shared mutex (waiters sleep in the kernel and
 * are woken one at a time), then takes SQLite's lock (BEGIN IMMEDIATE, or
 * the whole of a one-statement write), then lets the next writer in: that
 * one waits for SQLite's lock while this one works, alone, so no one
 * starves. In the 8-writer test on a busy 2-core box the worst write fell
 * from 110-300 ms to 30-140 ms. Holding the mutex through the transaction
 * did worse: the next writer was asleep when the lock came free. A process
 * dying inside passes the mutex on with EOWNERDEAD; SQLite rolls its
 * transaction back itself. */

static int s_queue_open(store_impl_t *self, const char *db_path, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s.lock", db_path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    /* flock: the first opener initialises the mutex while the others wait */
    if (fd < 0 || flock(fd, LOCK_EX) != 0 || fstat(fd, &st) != 0
        || ((size_t) st.st_size < sizeof(s_queue_t) && ftruncate(fd, sizeof(s_queue_t)) != 0)) {
        if (err && errlen)
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return SOUK_EIO;
    }
    s_queue_t *q = mmap(NULL, sizeof *q, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int rc = q == MAP_FAILED ? SOUK_EIO : SOUK_OK;
    if (rc == SOUK_OK && q->magic != QUEUE_MAGIC) {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        rc = pthread_mutex_init(&q->mutex, &a) == 0 ? SOUK_OK : SOUK_EIO;
        pthread_mutexattr_destroy(&a);
        if (rc == SOUK_OK)
            __atomic_store_n(&q->magic, QUEUE_MAGIC, __ATOMIC_RELEASE);
    }
    flock(fd, LOCK_UN);
    close(fd);
    if (rc != SOUK_OK) {
        if (q != MAP_FAILED)
            munmap(q, sizeof *q);
        if (err && errlen)
            snprintf(err, errlen, "cannot map %s", path);
        return rc;
    }
    self->queue = q;
    return SOUK_OK;
}

static int s_queue_enter(store_impl_t *self)
{
    if (self->queued)
        return SOUK_OK;
    /* One deadline for the queue and, in s_busy, for SQLite's lock after it. */
    self->busy_since_ns = s_mono_ns();
    int64_t end = self->busy_since_ns + (int64_t) self->busy_timeout_ms * 1000000;
    struct timespec d = { end / 1000000000, end % 1000000000 };
    int r = pthread_mutex_clocklock(&self->queue->mutex, CLOCK_MONOTONIC, &d);
    if (r == EOWNERDEAD)
        r = pthread_mutex_consistent(&self->queue->mutex);
    if (r != 0) {
        snprintf(self->errmsg, sizeof self->errmsg, "writer queue: %s", strerror(r));
        return r == ETIMEDOUT ? SOUK_EBUSY : SOUK_EIO;
    }
    self->queued = true;
    return SOUK_OK;
}

static void s_queue_leave(store_impl_t *self)
{
    if (!self->queued)
        return;
    self->queued = false;
    pthread_mutex_unlock(&self->queue->mutex);
}

/* ---- errors, statements, transactions ------------------------------------ */

static void s_checkpoint(store_impl_t *self);

static int s_err(store_impl_t *self, int rc)
{
    snprintf(self->errmsg, sizeof self->errmsg, "sqlite: %s (%d)", sqlite3_errmsg(self->db), rc);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:     return SOUK_EBUSY;
    case SQLITE_NOMEM:      return SOUK_ENOMEM;
    case SQLITE_TOOBIG:     return SOUK_ETOOBIG;
    case SQLITE_CONSTRAINT: return SOUK_EINVAL;
    default:                return SOUK_EIO;
    }
}

static sqlite3_stmt *s_stmt(store_impl_t *self, s_query_t q, int *rc)
{
    if (!self->stmt[q]) {
        int r = sqlite3_prepare_v3(self->db, s_sql[q], -1, SQLITE_PREPARE_PERSISTENT,
                                   &self->stmt[q], NULL);
        if (r != SQLITE_OK) {
            *rc = s_err(self, r);
            return NULL;
        }
    }
    return self->stmt[q];
}

/* Binds ?1, ?2... from a list of types: t text (NULL binds NULL), i int
 * (also bool and int-sized values), l int64_t. */
static int s_vbind(sqlite3_stmt *st, const char *types, va_list ap)
{
    int rc = SQLITE_OK;
    for (int i = 0; types[i] && rc == SQLITE_OK; i++) {
        if (types[i] == 't') {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i + 1);
        } else if (types[i] == 'i') {
            rc = sqlite3_bind_int(st, i + 1, va_arg(ap, int));
        } else {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        }
    }
    return rc;
}

static void s_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static sqlite3_stmt *s_vprep(store_impl_t *self, s_query_t q, int *rc, const char *types, va_list ap)
{
    sqlite3_stmt *st = s_stmt(self, q, rc);
    if (!st)
        return NULL;
    /* The types string and the SQL are written apart: check they agree. */
    int r = (int) strlen(types) == sqlite3_bind_parameter_count(st) ? s_vbind(st, types, ap)
                                                                   : SQLITE_RANGE;
    if (r != SQLITE_OK) {
        *rc = s_err(self, r);
        s_done(st);
        return NULL;
    }
    return st;
}

static sqlite3_stmt *s_prep(store_impl_t *self, s_query_t q, int *rc, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = s_vprep(self, q, rc, types, ap);
    va_end(ap);
    return st;
}

/* Runs a statement that returns no rows: the number of rows it changed, or
 * a negative error. */
static int s_write(store_impl_t *self, s_query_t q, const char *types, ...)
{
    int rc = SOUK_OK;
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = s_vprep(self, q, &rc, types, ap);
    va_end(ap);
    if (!st)
        return rc;
    /* A write outside a transaction is a transaction of its own; BEGIN
     * IMMEDIATE, which SQLite also counts as a write, is queued by s_begin. */
    bool lone = q != Q_BEGIN && !sqlite3_stmt_readonly(st) && sqlite3_get_autocommit(self->db);
    if (lone && self->batch) {
        /* an error rolled the batch's transaction back: a write now would
         * stand alone, the batch half applied */
        s_done(st);
        snprintf(self->errmsg, sizeof self->errmsg, "the batch's transaction was rolled back");
        return SOUK_EIO;
    }
    if (lone && (rc = s_queue_enter(self)) != SOUK_OK) {
        s_done(st);
        return rc;
    }
    int r = sqlite3_step(st);
    rc = r == SQLITE_DONE ? sqlite3_changes(self->db) : s_err(self, r);
    s_done(st);
    if (lone) {
        s_queue_leave(self);
        s_checkpoint(self);
    }
    return rc;
}

/* Inside a batch (store_batch_begin) a primitive's transaction is a
 * savepoint of the batch's: its own rollback undoes only its own steps,
 * and nothing is durable before the batch commits. */
static int s_begin(store_impl_t *self)
{
    if (self->batch) {
        int w = s_write(self, Q_SAVEPOINT, "");
        return w < 0 ? w : SOUK_OK;
    }
    int rc = s_queue_enter(self);
    if (rc == SOUK_OK) {
        rc = s_write(self, Q_BEGIN, "");
        s_queue_leave(self);
    }
    return rc < 0 ? rc : SOUK_OK;
}

static void s_rollback(store_impl_t *self)
{
    /* An I/O error may already have rolled the transaction back. */
    if (sqlite3_get_autocommit(self->db))
        return;
    if (self->batch) {
        s_write(self, Q_ROLLBACK_TO, "");
        s_write(self, Q_RELEASE, "");
    } else {
        s_write(self, Q_ROLLBACK, "");
    }
}

static int s_commit(store_impl_t *self)
{
    if (self->batch) {
        int w = s_write(self, Q_RELEASE, "");
        if (w < 0)
            s_rollback(self);
        return w < 0 ? w : SOUK_OK;
    }
    int rc = s_write(self, Q_COMMIT, "");
    if (rc < 0) {
        s_rollback(self);
        return rc;
    }
    s_checkpoint(self);
    return SOUK_OK;
}

/* Ends the caller's transaction: commits when keep, else rolls back;
 * returns rc unless the commit itself failed. */
static int s_end(store_impl_t *self, bool keep, int rc)
{
    if (!keep) {
        s_rollback(self);
        return rc;
    }
    int c = s_commit(self);
    return c < 0 ? c : rc;
}

/* store_batch_begin / store_batch_end: one transaction (one lock, one WAL
 * commit) for several primitives. */
static int s_batch_begin(store_impl_t *self)
{
    if (self->batch)
        return SOUK_EBUSY;
    int rc = s_begin(self);
    self->batch = rc == SOUK_OK;
    return rc;
}

static int s_batch_end(store_impl_t *self, bool commit)
{
    if (!self->batch)
        return SOUK_EINVAL;
    self->batch = false;
    if (sqlite3_get_autocommit(self->db)) {
        /* rolled back under the batch by an error its caller was told of */
        snprintf(self->errmsg, sizeof self->errmsg, "the batch's transaction was rolled back");
        return commit ? SOUK_EIO : SOUK_OK;
    }
    if (!commit) {
        s_rollback(self);
        return SOUK_OK;
    }
    return s_commit(self);
}

/* ---- busy handler ---------------------------------------------------------- */

static int s_busy(void *arg, int count)
{
    store_impl_t *self = arg;
    int64_t now = s_mono_ns();
    if (count == 0 && !self->queued)
        self->busy_since_ns = now;
    else if (now - self->busy_since_ns >= (int64_t) self->busy_timeout_ms * 1000000)
        return 0;
    /* A commit takes microseconds: the lock is often free again by the
     * time the scheduler comes back to us. */
    if (count < 4) {
        sched_yield();
        return 1;
    }
    int shift = count - 4 < 5 ? count - 4 : 5;
    int64_t us = 50 << shift;
    if (us > 1000)
        us = 1000;
    self->jitter ^= self->jitter << 13;
    self->jitter ^= self->jitter >> 17;
    self->jitter ^= self->jitter << 5;
    us += self->jitter % (uint32_t) (us / 2 + 1);
    struct timespec d = { 0, (long) us * 1000 };
    nanosleep(&d, NULL);
    return 1;
}

/* Stands in for SQLite's autocheckpoint, for two reasons. Its checkpoint
 * runs inside the committing statement, which for a one-statement write
 * would hold the writer queue through an fsync; s_checkpoint runs after
 * leaving it. And it is passive only: with writers from many processes
 * never pausing, a passive checkpoint never catches up, the WAL never
 * starts over, and it grew to 800 MB for a 3 MB database in the 8-writer
 * test. Past WAL_RESTART_FRAMES the committer (already committed) waits for
 * readers to move on so the next writer restarts the WAL, which
 * journal_size_limit then trims. */
static int s_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void) db, (void) name;
    ((store_impl_t *) arg)->wal_frames = frames;
    return SQLITE_OK;
}

static void s_checkpoint(store_impl_t *self)
{
    int frames = self->wal_frames;
    self->wal_frames = 0;
    if (frames >= WAL_CHECKPOINT_FRAMES)
        sqlite3_wal_checkpoint_v2(self->db, "main", frames >= WAL_RESTART_FRAMES
                                  ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

/* ---- rows ---------------------------------------------------------------------- */

typedef void (*s_anyfn_t)(void);

typedef struct {
    size_t size;
    int (*read)(sqlite3_stmt *st, void *row);   /* from column 1; clears on failure */
    void (*clear)(void *row);
    int (*emit)(const void *row, s_anyfn_t cb, void *arg);
} s_rowtype_t;

static char *s_dup(sqlite3_stmt *st, int col, int *rc)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NULL;
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = (size_t) sqlite3_column_bytes(st, col);
    char *s = t ? malloc(n + 1) : NULL;
    if (!s) {
        *rc = SOUK_ENOMEM;
        return NULL;
    }
    memcpy(s, t, n);
    s[n] = '\0';
    return s;
}

#define S_ENUM(kind, st, col, field, rc)                                     \
    do {                                                                     \
        if (kind##_parse((const char *) sqlite3_column_text(st, col), &(field)) != SOUK_OK) \
            rc = SOUK_EIO;                                                   \
    } while (0)

#define S_ROWTYPE(name, type, clear_fn, emit_fn)                            \
    static void s_clear_##name(void *row) { clear_fn(row); }                 \
    static const s_rowtype_t s_##name##_row = { sizeof(type), s_read_##name, s_clear_##name, emit_fn };
#define S_EMIT(name, cb_type)                                                \
    static int s_emit_##name(const void *row, s_anyfn_t cb, void *arg)       \
    {                                                                        \
        return ((cb_type) cb)(row, arg);                                     \
    }

static int s_read_user(sqlite3_stmt *st, void *row)
{
    store_user_t *u = row;
    int rc = SOUK_OK;
    *u = (store_user_t) {
        .waid = s_dup(st, 1, &rc), .profile_name = s_dup(st, 2, &rc),
        .from_addr = s_dup(st, 3, &rc), .last_media = s_dup(st, 4, &rc),
        .first_seen_ms = sqlite3_column_int64(st, 5), .last_seen_ms = sqlite3_column_int64(st, 6),
        .last_inbound_ms = sqlite3_column_int64(st, 7), .opted_out = sqlite3_column_int(st, 8) != 0,
        .opt_changed_ms = sqlite3_column_int64(st, 9),
    };
    if (rc)
        store_user_clear(u);
    return rc;
}

static int s_read_inbound(sqlite3_stmt *st, void *row)
{
    store_inbound_t *m = row;
    int rc = SOUK_OK;
    *m = (store_inbound_t) {
        .msg_sid = s_dup(st, 1, &rc), .waid = s_dup(st, 2, &rc), .body = s_dup(st, 3, &rc),
        .media = s_dup(st, 4, &rc), .params = s_dup(st, 5, &rc),
        .received_ms = sqlite3_column_int64(st, 6), .turn_sid = s_dup(st, 8, &rc),
    };
    S_ENUM(store_inbound_state, st, 7, m->state, rc);
    if (rc)
        store_inbound_clear(m);
    return rc;
}

static int s_read_history(sqlite3_stmt *st, void *row)
{
    store_history_t *h = row;
    int rc = SOUK_OK;
    *h = (store_history_t) {
        .waid = s_dup(st, 1, &rc), .msg_sid = s_dup(st, 3, &rc), .text = s_dup(st, 4, &rc),
        .ts_ms = sqlite3_column_int64(st, 5),
    };
    S_ENUM(store_dir, st, 2, h->dir, rc);
    if (rc)
        store_history_clear(h);
    return rc;
}

static int s_read_outbox(sqlite3_stmt *st, void *row)
{
    store_outbox_t *o = row;
    int rc = SOUK_OK;
    *o = (store_outbox_t) {
        .key = s_dup(st, 1, &rc), .waid = s_dup(st, 2, &rc), .to_addr = s_dup(st, 3, &rc),
        .body = s_dup(st, 4, &rc), .twilio_sid = s_dup(st, 7, &rc),
        .error_code = sqlite3_column_int(st, 8), .error_reason = s_dup(st, 9, &rc),
        .attempts = sqlite3_column_int(st, 10), .next_attempt_ms = sqlite3_column_int64(st, 11),
        .created_ms = sqlite3_column_int64(st, 12), .updated_ms = sqlite3_column_int64(st, 13),
    };
    S_ENUM(store_outbox_kind, st, 5, o->kind, rc);
    S_ENUM(store_outbox_state, st, 6, o->state, rc);
    if (rc)
        store_outbox_clear(o);
    return rc;
}

static int s_read_product(sqlite3_stmt *st, void *row)
{
    store_product_t *p = row;
    int rc = SOUK_OK;
    *p = (store_product_t) {
        .sku = s_dup(st, 1, &rc), .name = s_dup(st, 2, &rc), .description = s_dup(st, 3, &rc),
        .price_cents = sqlite3_column_int64(st, 4), .currency = s_dup(st, 5, &rc),
        .category = s_dup(st, 6, &rc), .image_url = s_dup(st, 7, &rc), .brand = s_dup(st, 8, &rc),
        .tags = s_dup(st, 9, &rc), .attrs = s_dup(st, 10, &rc),
        .stock = sqlite3_column_int64(st, 11), .updated_ms = sqlite3_column_int64(st, 12),
    };
    if (rc)
        store_product_clear(p);
    return rc;
}

static int s_read_order(sqlite3_stmt *st, void *row)
{
    store_order_t *o = row;
    int rc = SOUK_OK;
    *o = (store_order_t) {
        .order_id = s_dup(st, 1, &rc), .waid = s_dup(st, 2, &rc), .items = s_dup(st, 3, &rc),
        .total_cents = sqlite3_column_int64(st, 4), .currency = s_dup(st, 5, &rc),
        .note = s_dup(st, 7, &rc), .idem_key = s_dup(st, 8, &rc),
        .created_ms = sqlite3_column_int64(st, 9), .updated_ms = sqlite3_column_int64(st, 10),
    };
    S_ENUM(store_order_status, st, 6, o->status, rc);
    if (rc)
        store_order_clear(o);
    return rc;
}

static int s_read_ticket(sqlite3_stmt *st, void *row)
{
    store_ticket_t *t = row;
    int rc = SOUK_OK;
    *t = (store_ticket_t) {
        .ticket_id = s_dup(st, 1, &rc), .waid = s_dup(st, 2, &rc), .subject = s_dup(st, 3, &rc),
        .message = s_dup(st, 4, &rc), .order_id = s_dup(st, 5, &rc), .idem_key = s_dup(st, 7, &rc),
        .created_ms = sqlite3_column_int64(st, 8), .updated_ms = sqlite3_column_int64(st, 9),
    };
    S_ENUM(store_ticket_status, st, 6, t->status, rc);
    if (rc)
        store_ticket_clear(t);
    return rc;
}

S_EMIT(inbound, store_inbound_cb)
S_EMIT(history, store_history_cb)
S_EMIT(outbox, store_outbox_cb)
S_EMIT(product, store_product_cb)
S_EMIT(order, store_order_cb)
S_EMIT(ticket, store_ticket_cb)
S_ROWTYPE(user, store_user_t, store_user_clear, NULL)
S_ROWTYPE(inbound, store_inbound_t, store_inbound_clear, s_emit_inbound)
S_ROWTYPE(history, store_history_t, store_history_clear, s_emit_history)
S_ROWTYPE(outbox, store_outbox_t, store_outbox_clear, s_emit_outbox)
S_ROWTYPE(product, store_product_t, store_product_clear, s_emit_product)
S_ROWTYPE(order, store_order_t, store_order_clear, s_emit_order)
S_ROWTYPE(ticket, store_ticket_t, store_ticket_clear, s_emit_ticket)

/* Reads the one row of a query into *row: SOUK_OK, SOUK_ENOTFOUND or an error. */
static int s_read(store_impl_t *self, s_query_t q, const s_rowtype_t *rt, void *row,
                  const char *types, ...)
{
    int rc = SOUK_OK;
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = s_vprep(self, q, &rc, types, ap);
    va_end(ap);
    if (!st)
        return rc;
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        rc = rt->read(st, row);
    else
        rc = r == SQLITE_DONE ? SOUK_ENOTFOUND : s_err(self, r);
    s_done(st);
    return rc;
}

/* Hands *row to the caller's *out when it asked for it, else frees it. */
static void s_give(const s_rowtype_t *rt, void *row, void *out)
{
    if (out)
        memcpy(out, row, rt->size);
    else
        rt->clear(row);
}

/* Ends the caller's transaction, kept when rc is SOUK_OK, then hands the
 * row read inside it (when have_row) to *out if it was kept, else frees it. */
static int s_end_give(store_impl_t *self, int rc, const s_rowtype_t *rt, void *row, bool have_row,
                      void *out)
{
    rc = s_end(self, rc == SOUK_OK, rc);
    if (have_row && rc == SOUK_OK)
        s_give(rt, row, out);
    else if (have_row)
        rt->clear(row);
    return rc;
}

/* Runs a list query a page at a time: binds :waid/:now when present, pages
 * on column 0 through :after (from `after`, descending when it starts at
 * INT64_MAX) when present, else reads one page of `page` rows. */
static int s_list(store_impl_t *self, s_query_t q, const char *waid, int64_t now, int64_t after,
                  int page, const s_rowtype_t *rt, s_anyfn_t cb, void *arg)
{
    char *rows = calloc((size_t) page, rt->size);
    if (!rows)
        return SOUK_ENOMEM;
    int rc = SOUK_OK;
    bool more = true;
    while (more && rc == SOUK_OK) {
        sqlite3_stmt *st = s_stmt(self, q, &rc);
        if (!st)
            break;
        int i_waid = sqlite3_bind_parameter_index(st, ":waid");
        int i_now = sqlite3_bind_parameter_index(st, ":now");
        int i_after = sqlite3_bind_parameter_index(st, ":after");
        int r = sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":limit"), page);
        if (r == SQLITE_OK && i_waid)
            r = sqlite3_bind_text(st, i_waid, waid, -1, SQLITE_STATIC);
        if (r == SQLITE_OK && i_now)
            r = sqlite3_bind_int64(st, i_now, now);
        if (r == SQLITE_OK && i_after)
            r = sqlite3_bind_int64(st, i_after, after);
        int n = 0;
        while (r == SQLITE_OK && n < page && (r = sqlite3_step(st)) == SQLITE_ROW) {
            after = sqlite3_column_int64(st, 0);
            r = SQLITE_OK;
            rc = rt->read(st, rows + (size_t) n * rt->size);
            if (rc)
                break;
            n++;
        }
        if (r != SQLITE_OK && r != SQLITE_ROW && r != SQLITE_DONE)
            rc = s_err(self, r);
        s_done(st);
        more = i_after && n == page;
        bool stop = false;
        for (int i = 0; i < n; i++) {
            void *row = rows + (size_t) i * rt->size;
            if (rc == SOUK_OK && !stop) {
                int c = rt->emit(row, cb, arg);
                if (c < 0)
                    rc = c;
                stop = c != 0;
            }
            rt->clear(row);
        }
        more = more && !stop;
    }
    free(rows);
    return rc;
}

/* ---- users ------------------------------------------------------------------ */

static int s_user_seen(store_impl_t *self, const store_user_seen_t *u)
{
    int n = s_write(self, Q_USER_SEEN, "ttttli", u->waid, u->profile_name, u->from_addr,
                    u->media_json, u->now_ms, (int) u->inbound);
    return n < 0 ? n : SOUK_OK;
}

static int s_user_get(store_impl_t *self, const char *waid, store_user_t *out)
{
    return s_read(self, Q_USER_GET, &s_user_row, out, "t", waid);
}

static int s_user_set_opt_out(store_impl_t *self, const char *waid, bool opted_out, int64_t now_ms)
{
    int n = s_write(self, Q_USER_OPT, "til", waid, (int) opted_out, now_ms);
    return n < 0 ? n : SOUK_OK;
}

/* ---- inbound ---------------------------------------------------------------- */

static int s_inbound_put(store_impl_t *self, const store_inbound_t *in)
{
    int n = s_write(self, Q_INBOUND_PUT, "tttttl", in->msg_sid, in->waid, in->body, in->media,
                    in->params, in->received_ms);
    return n < 0 ? n : n == 0 ? SOUK_EEXISTS : SOUK_OK;
}

static int s_inbound_get(store_impl_t *self, const char *msg_sid, store_inbound_t *out)
{
    return s_read(self, Q_INBOUND_GET, &s_inbound_row, out, "t", msg_sid);
}

static int s_inbound_finish(store_impl_t *self, const char *msg_sid, store_inbound_state_t to,
                            const char *turn_sid)
{
    int n = s_write(self, Q_INBOUND_FINISH, "ttt", msg_sid, store_inbound_state_name(to), turn_sid);
    if (n != 0)
        return n < 0 ? n : SOUK_OK;
    /* Rows are never deleted: what the update missed is either absent or finished. */
    store_inbound_t m;
    int rc = s_read(self, Q_INBOUND_GET, &s_inbound_row, &m, "t", msg_sid);
    if (rc == SOUK_OK)
        store_inbound_clear(&m);
    return rc == SOUK_OK ? SOUK_ECONFLICT : rc;
}

static int s_inbound_pending(store_impl_t *self, const char *waid, store_inbound_cb cb, void *arg)
{
    return s_list(self, Q_INBOUND_PENDING, waid, 0, 0, PAGE_ROWS, &s_inbound_row,
                  (s_anyfn_t) cb, arg);
}

static int s_inbound_stale(store_impl_t *self, int64_t before_ms, int limit, store_waid_cb cb,
                           void *arg)
{
    /* at most `limit` short keys: read them all, then call back with no
     * statement open (cb may use the handle) */
    char **waids = calloc((size_t) limit, sizeof *waids);
    if (!waids)
        return SOUK_ENOMEM;
    int rc = SOUK_OK, n = 0;
    sqlite3_stmt *st = s_prep(self, Q_INBOUND_STALE, &rc, "ll", before_ms, (int64_t) limit);
    if (st) {
        int r = SQLITE_DONE;
        while (rc == SOUK_OK && n < limit && (r = sqlite3_step(st)) == SQLITE_ROW)
            if ((waids[n] = s_dup(st, 0, &rc)))
                n++;
        if (rc == SOUK_OK && r != SQLITE_ROW && r != SQLITE_DONE)
            rc = s_err(self, r);
        s_done(st);
    }
    bool stop = false;
    for (int i = 0; i < n; i++) {
        if (rc == SOUK_OK && !stop) {
            int c = cb(waids[i], arg);
            if (c < 0)
                rc = c;
            stop = c != 0;
        }
        free(waids[i]);
    }
    free(waids);
    return rc;
}

/* ---- history ---------------------------------------------------------------- */

static int s_history_append(store_impl_t *self, const store_history_t *h)
{
    int rc = s_begin(self);
    if (rc)
        return rc;
    int n = s_write(self, Q_HISTORY_ADD, "ttttl", h->waid, store_dir_name(h->dir), h->msg_sid,
                    h->text, h->ts_ms);
    if (n == 1)
        n = s_write(self, Q_HISTORY_TRIM, "ti", h->waid, self->history_keep);
    else if (n == 0)
        return s_end(self, false, SOUK_EEXISTS);
    return s_end(self, n >= 0, n < 0 ? n : SOUK_OK);
}

static int s_history_recent(store_impl_t *self, const char *waid, int n, store_history_cb cb,
                            void *arg)
{
    return s_list(self, Q_HISTORY_RECENT, waid, 0, 0, n, &s_history_row, (s_anyfn_t) cb, arg);
}

/* ---- outbox ----------------------------------------------------------------- */

static int s_outbox_get(store_impl_t *self, const char *key, store_outbox_t *out)
{
    return s_read(self, Q_OUTBOX_GET, &s_outbox_row, out, "t", key);
}

static int s_outbox_get_by_sid(store_impl_t *self, const char *twilio_sid, store_outbox_t *out)
{
    return s_read(self, Q_OUTBOX_BY_SID, &s_outbox_row, out, "t", twilio_sid);
}

static int s_outbox_put(store_impl_t *self, const store_outbox_t *o, store_outbox_t *existing)
{
    int n = s_write(self, Q_OUTBOX_PUT, "ttttttll", o->key, o->waid, o->to_addr, o->body,
                    store_outbox_kind_name(o->kind), store_outbox_state_name(o->state),
                    o->next_attempt_ms, o->created_ms);
    if (n != 0)
        return n < 0 ? n : SOUK_OK;
    if (!existing)
        return SOUK_EEXISTS;
    int rc = s_outbox_get(self, o->key, existing);
    return rc == SOUK_OK ? SOUK_EEXISTS : rc;
}

/* Applies the status callbacks that arrived before the message's sid was
 * recorded; inside the caller's transaction. */
static int s_outbox_fold(store_impl_t *self, const char *key, const char *sid,
                         store_outbox_state_t state)
{
    int rc = SOUK_OK;
    sqlite3_stmt *st = s_prep(self, Q_DELIVERY_LIST, &rc, "t", sid);
    if (!st)
        return rc;
    store_outbox_state_t from = state;
    int code = 0;
    int64_t ts = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        store_outbox_state_t status;
        if (store_outbox_state_parse((const char *) sqlite3_column_text(st, 0), &status) != SOUK_OK)
            continue;
        store_outbox_state_t next = store_outbox_after_status(state, status);
        if (next != state && (next == STORE_OUTBOX_FAILED || next == STORE_OUTBOX_UNDELIVERED))
            code = sqlite3_column_int(st, 1);
        state = next;
        ts = sqlite3_column_int64(st, 2);
    }
    if (r != SQLITE_DONE)
        rc = s_err(self, r);
    s_done(st);
    if (rc == SOUK_OK && state != from) {
        int n = s_write(self, Q_OUTBOX_SET_STATE, "ttil", key, store_outbox_state_name(state), code, ts);
        rc = n < 0 ? n : SOUK_OK;
    }
    return rc;
}

static int s_outbox_transition(store_impl_t *self, const char *key, store_outbox_state_t expected,
                               store_outbox_state_t to, const store_outbox_change_t *change,
                               store_outbox_t *out)
{
    static const store_outbox_change_t none = { 0 };
    const store_outbox_change_t *c = change ? change : &none;
    int rc = s_begin(self);
    if (rc)
        return rc;
    int n = s_write(self, Q_OUTBOX_MOVE, "ttttitill", key, store_outbox_state_name(expected),
                    store_outbox_state_name(to), c->twilio_sid, c->error_code, c->error_reason,
                    (int) c->count_attempt, c->next_attempt_ms, c->now_ms);
    if (n < 0)
        return s_end(self, false, n);
    if (n == 1 && c->twilio_sid)
        rc = s_outbox_fold(self, key, c->twilio_sid, to);
    store_outbox_t row;
    if (rc == SOUK_OK)
        rc = s_outbox_get(self, key, &row);
    if (rc == SOUK_OK && n == 0) {     /* the state differs: show it */
        s_give(&s_outbox_row, &row, out);
        return s_end(self, false, SOUK_ECONFLICT);
    }
    return s_end_give(self, rc, &s_outbox_row, &row, rc == SOUK_OK, out);
}

static int s_outbox_due(store_impl_t *self, store_outbox_state_t state, int64_t now_ms, int limit,
                        store_outbox_cb cb, void *arg)
{
    s_query_t q = state == STORE_OUTBOX_QUEUED ? Q_OUTBOX_DUE_QUEUED : Q_OUTBOX_DUE_SENDING;
    return s_list(self, q, NULL, now_ms, 0, limit, &s_outbox_row, (s_anyfn_t) cb, arg);
}

static int s_outbox_offered(store_impl_t *self, const char *waid, store_outbox_cb cb, void *arg)
{
    return s_list(self, Q_OUTBOX_OFFERED, waid, 0, 0, PAGE_ROWS, &s_outbox_row, (s_anyfn_t) cb, arg);
}

static int s_outbox_list(store_impl_t *self, store_outbox_cb cb, void *arg)
{
    return s_list(self, Q_OUTBOX_LIST_ALL, NULL, 0, INT64_MAX, PAGE_ROWS, &s_outbox_row,
                  (s_anyfn_t) cb, arg);
}

static int s_delivery_update(store_impl_t *self, const char *sid, store_outbox_state_t status,
                             int error_code, int64_t ts_ms, store_outbox_state_t *state)
{
    int rc = s_begin(self);
    if (rc)
        return rc;
    int n = s_write(self, Q_DELIVERY_ADD, "ttil", sid, store_outbox_state_name(status), error_code,
                    ts_ms);
    if (n < 0)
        return s_end(self, false, n);
    bool repeat = n == 0;
    store_outbox_t row;
    rc = s_outbox_get_by_sid(self, sid, &row);
    if (rc == SOUK_ENOTFOUND)   /* the event is kept for s_outbox_fold */
        return s_end(self, true, SOUK_ENOTFOUND);
    if (rc)
        return s_end(self, false, rc);
    store_outbox_state_t next = repeat ? row.state : store_outbox_after_status(row.state, status);
    if (next != row.state) {
        bool failed = next == STORE_OUTBOX_FAILED || next == STORE_OUTBOX_UNDELIVERED;
        n = s_write(self, Q_OUTBOX_SET_STATE, "ttil", row.key, store_outbox_state_name(next),
                    failed ? error_code : 0, ts_ms);
        rc = n < 0 ? n : SOUK_OK;
    }
    store_outbox_clear(&row);
    rc = s_end(self, rc == SOUK_OK, rc);
    if (rc == SOUK_OK && state)
        *state = next;
    return rc == SOUK_OK && repeat ? SOUK_EEXISTS : rc;
}

/* ---- dialog state ------------------------------------------------------------ */

/* One text column of the row a query finds by key: SOUK_OK with *out
 * (caller frees), SOUK_ENOTFOUND, or the store's error. */
static int s_get_text(store_impl_t *self, s_query_t query, const char *key, char **out)
{
    int rc = SOUK_OK;
    sqlite3_stmt *st = s_prep(self, query, &rc, "t", key);
    if (!st)
        return rc;
    int r = sqlite3_step(st);
    char *s = NULL;
    if (r == SQLITE_ROW)
        s = s_dup(st, 0, &rc);
    else
        rc = r == SQLITE_DONE ? SOUK_ENOTFOUND : s_err(self, r);
    s_done(st);
    if (rc == SOUK_OK)
        *out = s;
    return rc;
}

static int s_user_state_get(store_impl_t *self, const char *waid, char **json)
{
    return s_get_text(self, Q_USER_STATE_GET, waid, json);
}

static int s_user_state_put(store_impl_t *self, const char *waid, const char *json, int64_t now_ms)
{
    int n = s_write(self, Q_USER_STATE_PUT, "ttl", waid, json, now_ms);
    return n < 0 ? n : SOUK_OK;
}

/* ---- idempotency keys ------------------------------------------------------ */

static int s_idem_get(store_impl_t *self, const char *key, char **result_json)
{
    return s_get_text(self, Q_IDEM_GET, key, result_json);
}

static int s_idem_put(store_impl_t *self, const char *key, const char *result_json, int64_t now_ms,
                      char **stored_json)
{
    int n = s_write(self, Q_IDEM_PUT, "ttl", key, result_json, now_ms);
    if (n != 0)
        return n < 0 ? n : SOUK_OK;
    if (!stored_json)
        return SOUK_EEXISTS;
    int rc = s_idem_get(self, key, stored_json);
    return rc == SOUK_OK ? SOUK_EEXISTS : rc;
}

/* ---- products --------------------------------------------------------------- */

static int s_product_upsert(store_impl_t *self, const store_product_t *rows, size_t count, size_t *bad)
{
    int rc = s_begin(self);
    for (size_t i = 0; i < count && rc == SOUK_OK; i++) {
        const store_product_t *p = &rows[i];
        int n = s_write(self, Q_PRODUCT_UPSERT, "tttlttttttll", p->sku, p->name, p->description,
                        p->price_cents, p->currency, p->category, p->image_url, p->brand, p->tags,
                        p->attrs, p->stock, p->updated_ms);
        if (n < 0) {
            rc = n;
            if (bad)
                *bad = i;
            s_rollback(self);
        }
    }
    return rc == SOUK_OK ? s_commit(self) : rc;
}

static int s_product_get(store_impl_t *self, const char *sku, store_product_t *out)
{
    return s_read(self, Q_PRODUCT_GET, &s_product_row, out, "t", sku);
}

static int s_product_each(store_impl_t *self, store_product_cb cb, void *arg)
{
    return s_list(self, Q_PRODUCT_EACH, NULL, 0, 0, PAGE_ROWS, &s_product_row, (s_anyfn_t) cb, arg);
}

static int s_product_count(store_impl_t *self, int64_t *count)
{
    int rc = SOUK_OK;
    sqlite3_stmt *st = s_prep(self, Q_PRODUCT_COUNT, &rc, "");
    if (!st)
        return rc;
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *count = sqlite3_column_int64(st, 0);
    else
        rc = s_err(self, r);
    s_done(st);
    return rc;
}

static int s_outbox_count(store_impl_t *self, int64_t counts[STORE_OUTBOX_STATES])
{
    int rc = SOUK_OK;
    sqlite3_stmt *st = s_prep(self, Q_OUTBOX_COUNT, &rc, "");
    if (!st)
        return rc;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        store_outbox_state_t state;
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (name && store_outbox_state_parse(name, &state) == SOUK_OK)
            counts[state] = sqlite3_column_int64(st, 1);
    }
    if (r != SQLITE_DONE)
        rc = s_err(self, r);
    s_done(st);
    return rc;
}

/* Whether sku exists: SOUK_OK, SOUK_ENOTFOUND or an error. */
static int s_product_exists(store_impl_t *self, const char *sku)
{
    int rc = SOUK_OK;
    sqlite3_stmt *st = s_prep(self, Q_PRODUCT_EXISTS, &rc, "t", sku);
    if (!st)
        return rc;
    int r = sqlite3_step(st);
    rc = r == SQLITE_ROW ? SOUK_OK : r == SQLITE_DONE ? SOUK_ENOTFOUND : s_err(self, r);
    s_done(st);
    return rc;
}

static int s_product_take(store_impl_t *self, const char *sku, int64_t qty)
{
    /* One conditional UPDATE: atomic on its own, and it never goes below 0. */
    int n = s_write(self, Q_PRODUCT_TAKE, "tl", sku, qty);
    if (n != 0)
        return n < 0 ? n : SOUK_OK;
    int rc = s_product_exists(self, sku);
    return rc == SOUK_OK ? SOUK_ESTOCK : rc;
}

static int s_product_give(store_impl_t *self, const char *sku, int64_t qty)
{
    int n = s_write(self, Q_PRODUCT_GIVE, "tl", sku, qty);
    return n < 0 ? n : n == 0 ? SOUK_ENOTFOUND : SOUK_OK;
}

/* ---- orders and tickets ------------------------------------------------------ */

/* Inserts o inside the caller's transaction, whose idem_key is known to be
 * free, making an id when it has none; the stored row goes to *stored. */
static int s_order_insert(store_impl_t *self, const store_order_t *o, store_order_t *stored)
{
    char id[16];
    for (int attempt = 0; attempt < ID_TRIES; attempt++) {
        const char *oid = o->order_id;
        if (!oid) {
            store_make_id("SK", id, sizeof id);
            oid = id;
        }
        int n = s_write(self, Q_ORDER_PUT, "tttlttttl", oid, o->waid, o->items, o->total_cents,
                        o->currency, store_order_status_name(o->status), o->note, o->idem_key,
                        o->created_ms);
        if (n < 0)
            return n;
        if (n == 1)
            return s_read(self, Q_ORDER_GET, &s_order_row, stored, "tt", oid, NULL);
        if (o->order_id)
            break;
    }
    return SOUK_ECONFLICT;
}

/* Within the caller's transaction: SOUK_EEXISTS with the order in *out
 * (may be NULL) when idem_key was used, else SOUK_OK. */
static int s_order_idem(store_impl_t *self, const char *idem_key, store_order_t *out)
{
    store_order_t row;
    int rc = s_read(self, Q_ORDER_BY_IDEM, &s_order_row, &row, "t", idem_key);
    if (rc == SOUK_OK) {
        s_give(&s_order_row, &row, out);
        return SOUK_EEXISTS;
    }
    return rc == SOUK_ENOTFOUND ? SOUK_OK : rc;
}

static int s_order_put(store_impl_t *self, const store_order_t *o, store_order_t *out)
{
    int rc = s_begin(self);
    if (rc)
        return rc;
    rc = s_order_idem(self, o->idem_key, out);
    if (rc)
        return s_end(self, false, rc);
    store_order_t row;
    rc = s_order_insert(self, o, &row);
    return s_end_give(self, rc, &s_order_row, &row, rc == SOUK_OK, out);
}

typedef struct {
    char *text;
    size_t len, cap;
} s_buf_t;

static int s_buf_add(s_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *t = realloc(b->text, cap);
        if (!t)
            return SOUK_ENOMEM;
        b->text = t;
        b->cap = cap;
    }
    memcpy(b->text + b->len, s, n);
    b->len += n;
    b->text[b->len] = '\0';
    return SOUK_OK;
}

/* Takes one line's stock and adds its item to the order being built;
 * inside the caller's transaction. */
static int s_order_line(store_impl_t *self, const store_order_line_t *l, s_buf_t *items,
                        store_order_t *o)
{
    int rc = s_product_take(self, l->sku, l->qty);
    if (rc)
        return rc;
    sqlite3_stmt *st = s_prep(self, Q_PRODUCT_LINE, &rc, "tl", l->sku, l->qty);
    if (!st)
        return rc;
    int r = sqlite3_step(st);
    if (r != SQLITE_ROW) {
        rc = r == SQLITE_DONE ? SOUK_ENOTFOUND : s_err(self, r);
    } else {
        const char *currency = (const char *) sqlite3_column_text(st, 2);
        int64_t line;
        if (!currency || (o->currency && strcmp(o->currency, currency) != 0)
            || __builtin_mul_overflow(sqlite3_column_int64(st, 1), l->qty, &line)
            || __builtin_add_overflow(o->total_cents, line, &o->total_cents))
            rc = SOUK_EINVAL;
        if (rc == SOUK_OK && !o->currency)
            o->currency = s_dup(st, 2, &rc);
        if (rc == SOUK_OK)
            rc = s_buf_add(items, items->len ? "," : "[", 1);
        if (rc == SOUK_OK)
            rc = s_buf_add(items, (const char *) sqlite3_column_text(st, 0),
                           (size_t) sqlite3_column_bytes(st, 0));
    }
    s_done(st);
    return rc;
}

static int s_order_place(store_impl_t *self, const store_order_request_t *req, store_order_t *out,
                         size_t *bad_line)
{
    int rc = s_begin(self);
    if (rc)
        return rc;
    rc = s_order_idem(self, req->idem_key, out);
    if (rc)
        return s_end(self, false, rc);
    s_buf_t items = { 0 };
    store_order_t o = { .waid = (char *) req->waid, .status = STORE_ORDER_PENDING,
                        .note = (char *) req->note, .idem_key = (char *) req->idem_key,
                        .created_ms = req->now_ms };
    for (size_t i = 0; i < req->n_lines && rc == SOUK_OK; i++) {
        rc = s_order_line(self, &req->lines[i], &items, &o);
        if (rc && bad_line)
            *bad_line = i;
    }
    if (rc == SOUK_OK)
        rc = s_buf_add(&items, "]", 1);
    o.items = items.text;
    store_order_t row;
    if (rc == SOUK_OK)
        rc = s_order_insert(self, &o, &row);
    free(items.text);
    free(o.currency);
    return s_end_give(self, rc, &s_order_row, &row, rc == SOUK_OK, out);
}

static int s_order_get(store_impl_t *self, const char *order_id, const char *waid, store_order_t *out)
{
    return s_read(self, Q_ORDER_GET, &s_order_row, out, "tt", order_id, waid);
}

static int s_order_transition(store_impl_t *self, const char *order_id, const char *waid,
                              store_order_status_t to, int64_t now_ms, store_order_t *out)
{
    int rc = s_begin(self);
    if (rc)
        return rc;
    store_order_t row;
    rc = s_order_get(self, order_id, waid, &row);
    if (rc)
        return s_end(self, false, rc);
    store_order_status_t from = row.status;
    if (!store_order_can_move(from, to)) {
        s_give(&s_order_row, &row, out);
        return s_end(self, false, SOUK_ESTATE);
    }
    store_order_clear(&row);
    int n = s_write(self, Q_ORDER_MOVE, "tttl", order_id, store_order_status_name(from),
                    store_order_status_name(to), now_ms);
    rc = n < 0 ? n : SOUK_OK;
    if (rc == SOUK_OK)
        rc = s_order_get(self, order_id, waid, &row);
    return s_end_give(self, rc, &s_order_row, &row, rc == SOUK_OK, out);
}

static int s_order_list(store_impl_t *self, const char *waid, store_order_cb cb, void *arg)
{
    return s_list(self, waid ? Q_ORDER_LIST_USER : Q_ORDER_LIST_ALL, waid, 0, INT64_MAX, PAGE_ROWS,
                  &s_order_row, (s_anyfn_t) cb, arg);
}

/* As s_order_insert, for tickets. */
static int s_ticket_insert(store_impl_t *self, const store_ticket_t *t, store_ticket_t *stored)
{
    char id[16];
    for (int attempt = 0; attempt < ID_TRIES; attempt++) {
        const char *tid = t->ticket_id;
        if (!tid) {
            store_make_id("TK", id, sizeof id);
            tid = id;
        }
        int n = s_write(self, Q_TICKET_PUT, "ttttttl", tid, t->waid, t->subject, t->message,
                        t->order_id, t->idem_key, t->created_ms);
        if (n < 0)
            return n;
        if (n == 1)
            return s_read(self, Q_TICKET_GET, &s_ticket_row, stored, "tt", tid, t->waid);
        if (t->ticket_id)
            break;
    }
    return SOUK_ECONFLICT;
}

static int s_ticket_put(store_impl_t *self, const store_ticket_t *t, store_ticket_t *out)
{
    int rc = s_begin(self);
    if (rc)
        return rc;
    store_ticket_t row;
    rc = s_read(self, Q_TICKET_BY_IDEM, &s_ticket_row, &row, "t", t->idem_key);
    if (rc == SOUK_OK) {
        s_give(&s_ticket_row, &row, out);
        return s_end(self, false, SOUK_EEXISTS);
    }
    if (rc != SOUK_ENOTFOUND)
        return s_end(self, false, rc);
    rc = SOUK_OK;
    if (t->order_id) {
        store_order_t order;
        rc = s_order_get(self, t->order_id, t->waid, &order);
        if (rc == SOUK_OK)
            store_order_clear(&order);
    }
    if (rc == SOUK_OK)
        rc = s_ticket_insert(self, t, &row);
    return s_end_give(self, rc, &s_ticket_row, &row, rc == SOUK_OK, out);
}

static int s_ticket_get(store_impl_t *self, const char *ticket_id, const char *waid, store_ticket_t *out)
{
    return s_read(self, Q_TICKET_GET, &s_ticket_row, out, "tt", ticket_id, waid);
}

static int s_ticket_close(store_impl_t *self, const char *ticket_id, const char *waid, int64_t now_ms)
{
    int n = s_write(self, Q_TICKET_CLOSE, "ttl", ticket_id, waid, now_ms);
    if (n != 0)
        return n < 0 ? n : SOUK_OK;
    store_ticket_t t;
    int rc = s_ticket_get(self, ticket_id, waid, &t);
    if (rc == SOUK_OK)
        store_ticket_clear(&t);
    return rc == SOUK_OK ? SOUK_ESTATE : rc;
}

static int s_ticket_list(store_impl_t *self, const char *waid, store_ticket_cb cb, void *arg)
{
    return s_list(self, waid ? Q_TICKET_LIST_USER : Q_TICKET_LIST_ALL, waid, 0, INT64_MAX,
                  PAGE_ROWS, &s_ticket_row, (s_anyfn_t) cb, arg);
}

/* ---- leases ------------------------------------------------------------------ */

static int s_lease_acquire(store_impl_t *self, const char *name, const char *owner, int64_t ttl_ms,
                           int64_t now_ms)
{
    int n = s_write(self, Q_LEASE_ACQUIRE, "ttll", name, owner, now_ms, ttl_ms);
    return n < 0 ? n : n == 0 ? SOUK_ECONFLICT : SOUK_OK;
}

static int s_lease_release(store_impl_t *self, const char *name, const char *owner)
{
    int n = s_write(self, Q_LEASE_RELEASE, "tt", name, owner);
    return n < 0 ? n : n == 0 ? SOUK_ECONFLICT : SOUK_OK;
}

/* ---- open / close ------------------------------------------------------------ */

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, const char *detail)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, detail);
    return rc;
}

static int s_user_version(store_impl_t *self, int *v)
{
    sqlite3_stmt *st;
    int r = sqlite3_prepare_v2(self->db, "PRAGMA user_version", -1, &st, NULL);
    if (r == SQLITE_OK) {
        r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            *v = sqlite3_column_int(st, 0);
            r = SQLITE_OK;
        }
        sqlite3_finalize(st);
    }
    return r == SQLITE_OK ? SOUK_OK : s_err(self, r);
}

static int s_migrate(store_impl_t *self, char *err, size_t errlen)
{
    int v = 0;
    int rc = s_user_version(self, &v);
    if (rc == SOUK_OK && v == SCHEMA_VERSION)
        return SOUK_OK;     /* the common case: no write lock taken */
    if (rc == SOUK_OK)
        rc = s_begin(self);
    if (rc == SOUK_OK)
        rc = s_user_version(self, &v);  /* another process may have just done it */
    if (rc == SOUK_OK && v > SCHEMA_VERSION) {
        s_rollback(self);
        return s_fail(err, errlen, SOUK_ECONFIG,
                      "%s: written by a newer souk (schema version too high)",
                      sqlite3_db_filename(self->db, "main"));
    }
    for (; rc == SOUK_OK && v < SCHEMA_VERSION; v++) {
        int r = sqlite3_exec(self->db, s_migrations[v], NULL, NULL, NULL);
        if (r != SQLITE_OK)
            rc = s_err(self, r);
    }
    if (rc == SOUK_OK) {
        char sql[48];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        int r = sqlite3_exec(self->db, sql, NULL, NULL, NULL);
        rc = r == SQLITE_OK ? s_commit(self) : s_err(self, r);
    }
    if (rc) {
        s_rollback(self);
        return s_fail(err, errlen, rc, "migrating the schema: %s", self->errmsg);
    }
    return SOUK_OK;
}

static int s_journal_wal(void *arg, int ncol, char **vals, char **names)
{
    (void) names;
    *(bool *) arg = ncol == 1 && vals[0] && strcmp(vals[0], "wal") == 0;
    return 0;
}

static int s_configure(store_impl_t *self, const store_options_t *opt, char *err, size_t errlen)
{
    /* Turning a new file to WAL needs an exclusive lock, and SQLite does not
     * call the busy handler for it when processes open at once: retry here. */
    bool wal = false;
    int r;
    for (int count = 0;; count++) {
        r = sqlite3_exec(self->db, "PRAGMA journal_mode = WAL", s_journal_wal, &wal, NULL);
        if (((r & 0xff) != SQLITE_BUSY && r != SQLITE_OK) || wal || !s_busy(self, count))
            break;
    }
    if (r != SQLITE_OK || !wal) {
        int rc = r != SQLITE_OK ? s_err(self, r) : SOUK_EIO;
        return s_fail(err, errlen, rc, "cannot switch to WAL: %s", sqlite3_errmsg(self->db));
    }
    char sql[256];
    snprintf(sql, sizeof sql,
             "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -%d; PRAGMA mmap_size = %lld;"
             " PRAGMA temp_store = MEMORY; PRAGMA trusted_schema = OFF;"
             " PRAGMA journal_size_limit = " WAL_SIZE_LIMIT ";",
             opt->cache_kib, (long long) opt->mmap_bytes);
    r = sqlite3_exec(self->db, sql, NULL, NULL, NULL);
    if (r != SQLITE_OK)
        return s_fail(err, errlen, s_err(self, r), "configuring: %s", sqlite3_errmsg(self->db));
    return SOUK_OK;
}

static void s_close(store_impl_t *self)
{
    if (!self)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(self->stmt[i]);
    sqlite3_close(self->db);
    if (self->queue)
        munmap(self->queue, sizeof *self->queue);
    free(self);
}

static int s_open(const char *data_dir, const store_options_t *opt, store_impl_t **out, char *err,
                  size_t errlen)
{
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return s_fail(err, errlen, SOUK_EIO, "cannot create %s", data_dir);
    char path[4096];
    if ((size_t) snprintf(path, sizeof path, "%s/souk.db", data_dir) >= sizeof path)
        return s_fail(err, errlen, SOUK_EINVAL, "data dir too long: %s", data_dir);
    /* Created here so it is private from the start: it holds phone numbers. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return s_fail(err, errlen, SOUK_EIO, "cannot open %s", path);
    close(fd);

    store_impl_t *self = calloc(1, sizeof *self);
    if (!self)
        return s_fail(err, errlen, SOUK_ENOMEM, "%s", "out of memory");
    self->busy_timeout_ms = opt->busy_timeout_ms;
    self->history_keep = opt->history_keep;
    self->jitter = (uint32_t) getpid() * 2654435761u | 1;
    int r = sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    int rc = SOUK_OK;
    if (r != SQLITE_OK)
        rc = s_fail(err, errlen, SOUK_EIO, "sqlite cannot open the database: %s",
                    self->db ? sqlite3_errmsg(self->db) : "out of memory");
    if (rc == SOUK_OK)
        rc = s_queue_open(self, path, err, errlen);
    if (rc == SOUK_OK) {
        sqlite3_busy_handler(self->db, s_busy, self);
        rc = s_configure(self, opt, err, errlen);
    }
    if (rc == SOUK_OK) {
        sqlite3_wal_hook(self->db, s_wal_hook, self);
        rc = s_migrate(self, err, errlen);
    }
    if (rc) {
        s_close(self);
        return rc;
    }
    *out = self;
    return SOUK_OK;
}

static const char *s_last_error(const store_impl_t *self)
{
    return self->errmsg[0] ? self->errmsg : "no error";
}

const store_backend_t store_sqlite_backend = {
    .name = "sqlite",
    .open = s_open,
    .close = s_close,
    .last_error = s_last_error,
    .batch_begin = s_batch_begin,
    .batch_end = s_batch_end,
    .user_seen = s_user_seen,
    .user_get = s_user_get,
    .user_set_opt_out = s_user_set_opt_out,
    .inbound_put = s_inbound_put,
    .inbound_get = s_inbound_get,
    .inbound_finish = s_inbound_finish,
    .inbound_pending = s_inbound_pending,
    .inbound_stale = s_inbound_stale,
    .history_append = s_history_append,
    .history_recent = s_history_recent,
    .outbox_put = s_outbox_put,
    .outbox_get = s_outbox_get,
    .outbox_get_by_sid = s_outbox_get_by_sid,
    .outbox_transition = s_outbox_transition,
    .outbox_due = s_outbox_due,
    .outbox_offered = s_outbox_offered,
    .outbox_list = s_outbox_list,
    .delivery_update = s_delivery_update,
    .idem_get = s_idem_get,
    .idem_put = s_idem_put,
    .product_upsert = s_product_upsert,
    .product_get = s_product_get,
    .product_each = s_product_each,
    .product_count = s_product_count,
    .outbox_count = s_outbox_count,
    .product_take = s_product_take,
    .product_give = s_product_give,
    .order_put = s_order_put,
    .order_place = s_order_place,
    .order_get = s_order_get,
    .order_transition = s_order_transition,
    .order_list = s_order_list,
    .ticket_put = s_ticket_put,
    .ticket_get = s_ticket_get,
    .ticket_close = s_ticket_close,
    .ticket_list = s_ticket_list,
    .lease_acquire = s_lease_acquire,
    .lease_release = s_lease_release,
    .user_state_get = s_user_state_get,
    .user_state_put = s_user_state_put,
};
