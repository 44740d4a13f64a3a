/* Kill tests: every accepted message gets exactly one reply while actors
 * die with SIGKILL at random moments (invariant 3 of the brief).
 *
 * Each scenario (one process, one time-out, chosen by argv[1]) starts the
 * real `souk serve` with the echo answer and the REAL sender pointed at
 * tests/fakes/twilio_fake.py, lets USERS threads send PER_USER messages
 * each, and meanwhile a killer thread SIGKILLs the gateway, session actors,
 * the sender, or all three. A kill is aimed at a random moment of a random
 * delivery (see scenario_t): the windows that matter are milliseconds wide.
 *
 *   kill_gateway        debounce off, budget 1 s: answers go inline
 *   kill_gateway_later  budget 50 ms, debounce 150 ms: every answer goes
 *                       through the sender, after an acknowledgement
 *   kill_sessions       debounce off, budget 1 s
 *   kill_sender         as kill_gateway_later, and the fake answers each
 *                       POST 30 ms after recording it: kills land between
 *                       "Twilio has it" and "the sender knows"
 *   kill_all            all three, debounce off, budget 50 ms
 * Where a debounce is on, users pause longer than it, so every message is
 * still its own turn (a turn that merges several is counted right anyway:
 * replies are matched by token).
 *
 * A delivery is accepted when it gets HTTP 200, as Twilio sees it; a
 * delivery that fails (connection refused or reset, any other status) is
 * delivered again with the same MessageSid, as Twilio retries a failed
 * connect, until it is accepted. The echo answer repeats the user's text,
 * so every message carries a unique token ("t-u03-m07.") and replies are
 * matched by token: an inline reply is the TwiML <Message> of an accepted
 * response, a REST reply is a message the fake accepted for that user.
 * When the load stops we wait until souk owes nothing (no outbox row
 * offered, queued or sending, no inbound message still received — read
 * from the store) and every token has a reply, then assert for every
 * message: its token is carried by exactly one reply, inline or REST.
 *
 * The output has the counts, and how often each recovery path ran (from
 * serve.log), as evidence that the kills landed where they were aimed.
 * The seed is printed; SOUK_KILL_SEED=<seed> replays the same kill schedule
 * and think times (thread interleavings differ, of course); KILL_DEBUG=1
 * lists every kill. HARNESS_KEEP=1 keeps the data folder; a failing
 * scenario keeps it anyway and prints, for every message that went wrong,
 * its outbox row, its serve.log lines and the likely cause. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_proc.h"
#include "harness.h"
#include "souk/actor.h"
#include "souk/error.h"
#include "souk/store.h"


#define ACCOUNT "AC5e55a5e55a5e55a5e55a5e55a5e55a5"
#define FROM "whatsapp:+14155238886"

/* Sizes: ~10 users x ~10 messages; smaller under ASan, where every actor
 * is several times slower and the whole suite must still fit. */
#if defined(__SANITIZE_ADDRESS__)
#define USERS 6
#define PER_USER 6
#define LOAD_MS 40000   /* every message accepted within this */
#define SETTLE_MS 25000 /* then souk owes nothing within this */
#else
#define USERS 10
#define PER_USER 10
#define LOAD_MS 30000
#define SETTLE_MS 20000
#endif
#define MSGS (USERS * PER_USER)
#define QUIET_MS 600      /* after settling, a last look for late doubles */
#define RESEND_MIN_MS 10  /* a failed delivery is made again after this, doubling */
#define RESEND_MAX_MS 250
#define KILLS_MAX 1024

/* What a scenario kills: an index into s_target_names, a bit in a mask. */
enum { T_GATEWAY, T_SESSION, T_SENDER, T_COUNT };
#define KILL_GATEWAY (1u << T_GATEWAY)
#define KILL_SESSION (1u << T_SESSION)
#define KILL_SENDER (1u << T_SENDER)
static const char *const s_target_names[T_COUNT] = { "gateway", "session", "sender" };

/* ---- a small PRNG: splitmix64, one stream per thread ------------------------------- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t s_rng_next(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int s_rng_range(rng_t *r, int lo, int hi)
{
    return lo + (int)(s_rng_next(r) % (uint64_t)(hi - lo + 1));
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* UTC wall time as serve.log writes it, to line the two up. */
static void s_wall_stamp(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* ---- the fake Twilio: one per scenario ----------------------------------------------- */

static int s_fake_start(fake_proc_t *f)
{
    const char *args[] = { "--account-sid", ACCOUNT, "--auth-token", HARNESS_TOKEN, NULL };
    return fake_proc_start(f, "twilio_fake.py", args);
}

/* Every message the fake accepted: {"messages": [...], "attempts": [...]}. */
static json_t *s_fake_seen(const fake_proc_t *f)
{
    return fake_proc_call(f, "GET", "/_fake/messages", NULL);
}

/* ---- one scenario -------------------------------------------------------------------- */

typedef struct {
    char sid[35];
    char token[16];      /* "t-u03-m07.": fixed width, so none is a prefix of another */
    char text[64];
    int user;
    int deliveries;      /* POSTs until one was accepted */
    int failed;          /* POSTs not accepted: no HTTP answer, or not 200 */
    long last_failure;   /* status of the last failed one (0: no HTTP answer) */
    bool accepted;
    char answer[16];     /* X-Souk-Answer of the accepted delivery */
    char *reply;         /* its TwiML <Message>, or NULL */
    char accepted_at[32];
    /* what the check found */
    int inline_hits, rest_hits;
} msg_rec_t;

typedef struct {
    char at[32];
    int target;
    pid_t pid;
    char name[48];
    int delay_us;        /* aimed at: after the delivery that triggered it started */
    int lag_us;          /* came: after the delivery that triggered it started */
} kill_rec_t;

/* A scenario: what is killed, and how souk and the users are set. */
typedef struct {
    const char *name;
    unsigned targets;    /* KILL_* */
    int budget_ms;       /* SOUK_REPLY_BUDGET_MS */
    int debounce_ms;     /* SOUK_DEBOUNCE_MS */
    int fake_delay_ms;   /* the fake answers each accepted POST this late */
    int think_min_ms, think_max_ms; /* a user's pause between messages */
    int pause_min_ms, pause_max_ms; /* the killer's pause between kills */
    /* A kill comes near_lo..near_hi us after a delivery starts (where the
     * target does its work for it), or, one time in four, 0..window_ms. */
    int near_lo_us, near_hi_us, window_ms;
} scenario_t;

typedef struct {
    const scenario_t *sc;
    uint64_t seed;
    harness_t h;
    fake_proc_t fake;
    msg_rec_t msgs[MSGS];
    atomic_int users_done;
    atomic_int resends;
    /* the killer's trigger: a delivery starts (under `lock`, signalled on `started`) */
    pthread_mutex_t lock;
    pthread_cond_t started;
    int deliveries;         /* started so far */
    int last_user;          /* whose delivery started last */
    int64_t last_start_us;  /* when (monotonic) */
    kill_rec_t kills[KILLS_MAX];
    int nkills, kill_misses;
    int kills_by[T_COUNT];
} run_t;

typedef struct {
    run_t *run;
    int user;
} user_arg_t;

static void s_waid(int user, char out[16])
{
    snprintf(out, 16, "1555031%04d", user);
}

/* One user: PER_USER messages, one after the other; each delivered again
 * until it is accepted, as Twilio does after a failed connect. */
static void *s_user_thread(void *arg)
{
    user_arg_t *ua = arg;
    run_t *run = ua->run;
    rng_t rng = { run->seed ^ (0x5851f42d4c957f2dull * (uint64_t)(ua->user + 1)) };
    char waid[16], name[16];
    s_waid(ua->user, waid);
    snprintf(name, sizeof name, "U%d", ua->user);
    int64_t deadline = souk_now_ms() + LOAD_MS;
    for (int i = 0; i < PER_USER; i++) {
        msg_rec_t *m = &run->msgs[ua->user * PER_USER + i];
        int wait = RESEND_MIN_MS;
        for (;;) {
            harness_reply_t r = { 0 };
            m->deliveries++;
            if (m->deliveries > 1)
                atomic_fetch_add(&run->resends, 1);
            pthread_mutex_lock(&run->lock);
            run->deliveries++;
            run->last_user = ua->user;
            run->last_start_us = s_now_us();
            pthread_cond_broadcast(&run->started);
            pthread_mutex_unlock(&run->lock);
            harness_send(&run->h, waid, name, m->text, m->sid, NULL, &r);
            if (r.status == 200) {
                m->accepted = true;
                snprintf(m->answer, sizeof m->answer, "%s", r.answer);
                m->reply = r.message ? strdup(r.message) : NULL;
                s_wall_stamp(m->accepted_at);
                harness_reply_clear(&r);
                break;
            }
            m->failed++;
            m->last_failure = r.status;
            harness_reply_clear(&r);
            if (souk_now_ms() > deadline)
                break;
            s_sleep_ms(wait);
            wait = wait * 2 < RESEND_MAX_MS ? wait * 2 : RESEND_MAX_MS;
        }
        if (!m->accepted)
            break; /* the check reports it */
        s_sleep_ms(s_rng_range(&rng, run->sc->think_min_ms, run->sc->think_max_ms));
    }
    atomic_fetch_add(&run->users_done, 1);
    return NULL;
}

/* State letter and parent pid of pid from /proc; false when it is gone. */
static bool s_proc_stat(pid_t pid, char *state, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* the command name may hold spaces */
    int parent = 0;
    if (!rp || sscanf(rp + 1, " %c %d", state, &parent) != 2)
        return false;
    *ppid = (pid_t)parent;
    return true;
}

/* Whether pid is a live child of this run's souk serve: only those are
 * killed, never a recycled pid. */
static bool s_ours(const run_t *run, pid_t pid)
{
    char state;
    pid_t ppid;
    return pid > 0 && s_proc_stat(pid, &state, &ppid) && ppid == run->h.pid && state != 'Z';
}

/* The actors as `souk status --json` lists them. */
typedef struct {
    int n;
    struct {
        char name[48];
        int role;        /* T_*, or -1 */
        pid_t pid;       /* 0 while not running */
        bool ready;
    } a[USERS + 16];
} actors_t;

static void s_actors(run_t *run, actors_t *out)
{
    out->n = 0;
    json_t *doc = harness_status(&run->h);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(doc, "actors"), i, a) {
        const char *role = json_string_value(json_object_get(a, "role"));
        const char *name = json_string_value(json_object_get(a, "name"));
        const char *state = json_string_value(json_object_get(a, "state"));
        if (!role || !name || !state || out->n == (int)(sizeof out->a / sizeof out->a[0]))
            continue;
        out->a[out->n].role = -1;
        for (int t = 0; t < T_COUNT; t++)
            if (strcmp(role, s_target_names[t]) == 0)
                out->a[out->n].role = t;
        snprintf(out->a[out->n].name, sizeof out->a[out->n].name, "%s", name);
        out->a[out->n].pid = (pid_t)json_integer_value(json_object_get(a, "pid"));
        out->a[out->n].ready = strcmp(state, "ready") == 0;
        out->n++;
    }
    json_decref(doc);
}

/* Index of the actor of `target` to kill, or -1: for a session, the one of
 * `user` when it runs, else any. */
static int s_choose(const actors_t *as, int target, int user, rng_t *rng)
{
    char mine[48], waid[16];
    s_waid(user, waid);
    snprintf(mine, sizeof mine, "s-%s", waid);
    int idx[USERS + 16], n = 0;
    for (int i = 0; i < as->n; i++) {
        if (as->a[i].role != target || as->a[i].pid <= 0)
            continue;
        if (target == T_SESSION && strcmp(as->a[i].name, mine) == 0)
            return i;
        idx[n++] = i;
    }
    return n ? idx[s_rng_range(rng, 0, n - 1)] : -1;
}

/* Whether the permanent actor `name` is ready again with a pid other than
 * `old` (the supervisor restarted it). */
static bool s_back(run_t *run, const char *name, pid_t old)
{
    actors_t *as = malloc(sizeof *as);
    bool back = false;
    if (!as)
        return false;
    s_actors(run, as);
    for (int i = 0; i < as->n; i++)
        if (strcmp(as->a[i].name, name) == 0)
            back = as->a[i].pid > 0 && as->a[i].pid != old && as->a[i].ready;
    free(as);
    return back;
}

static bool s_load_running(run_t *run)
{
    return atomic_load(&run->users_done) < USERS;
}

/* Waits for the next delivery to start (or the load to end); returns its
 * user and start time. */
static int s_next_delivery(run_t *run, int64_t *start_us)
{
    pthread_mutex_lock(&run->lock);
    int before = run->deliveries;
    while (run->deliveries == before && s_load_running(run)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&run->started, &run->lock, &until);
    }
    int user = run->last_user;
    *start_us = run->last_start_us;
    pthread_mutex_unlock(&run->lock);
    return user;
}

/* Kills one actor at a random moment of a delivery: waits for the next
 * delivery to start, then a random delay (see scenario_t) and SIGKILL.
 * Pids are read before the trigger: `souk status` takes longer than the
 * windows aimed at. Returns whether it killed. */
static bool s_kill_one(run_t *run, rng_t *rng, actors_t *as)
{
    const scenario_t *sc = run->sc;
    int choices[T_COUNT], nchoices = 0;
    for (int t = 0; t < T_COUNT; t++)
        if (sc->targets & (1u << t))
            choices[nchoices++] = t;
    int target = choices[s_rng_range(rng, 0, nchoices - 1)];
    s_actors(run, as);
    int64_t start_us;
    int user = s_next_delivery(run, &start_us);
    int delay_us = s_rng_range(rng, 0, 3) ? s_rng_range(rng, sc->near_lo_us, sc->near_hi_us)
                                          : s_rng_range(rng, 0, sc->window_ms * 1000);
    usleep((useconds_t)delay_us);
    if (!s_load_running(run))
        return false;
    int i = s_choose(as, target, user, rng);
    if (i < 0 || !s_ours(run, as->a[i].pid) || kill(as->a[i].pid, SIGKILL) != 0) {
        run->kill_misses++;
        return false;
    }
    kill_rec_t *k = &run->kills[run->nkills++];
    k->lag_us = (int)(s_now_us() - start_us);
    s_wall_stamp(k->at);
    k->target = target;
    k->pid = as->a[i].pid;
    k->delay_us = delay_us;
    snprintf(k->name, sizeof k->name, "%s", as->a[i].name);
    run->kills_by[target]++;
    return true;
}

/* The pause of a permanent actor starts when it is back: its restart
 * backoff doubles while it keeps dying young, and an ever-absent gateway
 * would test nothing but the resends. */
static void *s_killer_thread(void *arg)
{
    run_t *run = arg;
    rng_t rng = { run->seed ^ 0xd1b54a32d192ed03ull };
    actors_t *as = malloc(sizeof *as);
    if (!as)
        return NULL;
    while (s_load_running(run) && run->nkills < KILLS_MAX) {
        int pause = s_rng_range(&rng, run->sc->pause_min_ms, run->sc->pause_max_ms);
        for (; pause > 0 && s_load_running(run); pause -= 10)
            s_sleep_ms(pause < 10 ? pause : 10);
        if (!s_load_running(run) || !s_kill_one(run, &rng, as))
            continue;
        const kill_rec_t *k = &run->kills[run->nkills - 1];
        if (k->target != T_SESSION)
            while (s_load_running(run) && !s_back(run, k->name, k->pid))
                s_sleep_ms(20);
    }
    free(as);
    return NULL;
}

/* ---- the check ------------------------------------------------------------------------- */

typedef struct {
    int owed;            /* outbox rows offered, queued or sending; inbound still received */
} owed_t;

static int s_count_row(const store_outbox_t *o, void *arg)
{
    (void)o;
    ((owed_t *)arg)->owed++;
    return 0;
}

static int s_count_inbound(const store_inbound_t *m, void *arg)
{
    (void)m;
    ((owed_t *)arg)->owed++;
    return 0;
}

/* What souk still owes: rows not yet decided or not yet sent, messages not
 * yet answered. -1 when the store cannot be read. */
static int s_owed(store_t *st)
{
    owed_t o = { 0 };
    if (store_outbox_due(st, STORE_OUTBOX_QUEUED, INT64_MAX, 1000, s_count_row, &o) != SOUK_OK
        || store_outbox_due(st, STORE_OUTBOX_SENDING, INT64_MAX, 1000, s_count_row, &o) != SOUK_OK)
        return -1;
    for (int u = 0; u < USERS; u++) {
        char waid[16];
        s_waid(u, waid);
        if (store_outbox_offered(st, waid, s_count_row, &o) != SOUK_OK
            || store_inbound_pending(st, waid, s_count_inbound, &o) != SOUK_OK)
            return -1;
    }
    return o.owed;
}

/* Counts, for every message, the replies carrying its token: accepted
 * inline answers (any message's: a merged turn answers for several) and
 * messages the fake accepted for that user. Returns the number of
 * messages without any reply yet; *stray gets REST messages to our users
 * that carry no token at all. */
static int s_tally(run_t *run, json_t *seen, int *stray, int *rest_total)
{
    for (int i = 0; i < MSGS; i++)
        run->msgs[i].inline_hits = run->msgs[i].rest_hits = 0;
    for (int j = 0; j < MSGS; j++) {
        const msg_rec_t *a = &run->msgs[j];
        if (!a->reply || strcmp(a->answer, "inline") != 0)
            continue;
        for (int i = 0; i < MSGS; i++)
            if (strstr(a->reply, run->msgs[i].token))
                run->msgs[i].inline_hits++;
    }
    *stray = *rest_total = 0;
    size_t k;
    json_t *m;
    json_array_foreach(json_object_get(seen, "messages"), k, m) {
        const char *to = json_string_value(json_object_get(m, "to"));
        const char *body = json_string_value(json_object_get(m, "body"));
        if (!to || !body)
            continue;
        (*rest_total)++;
        bool any = false;
        for (int i = 0; i < MSGS; i++) {
            msg_rec_t *r = &run->msgs[i];
            char want[40], waid[16];
            s_waid(r->user, waid);
            snprintf(want, sizeof want, "whatsapp:+%s", waid);
            if (strcmp(to, want) == 0 && strstr(body, r->token)) {
                r->rest_hits++;
                any = true;
            }
        }
        if (!any)
            (*stray)++;
    }
    int missing = 0;
    for (int i = 0; i < MSGS; i++)
        if (run->msgs[i].inline_hits + run->msgs[i].rest_hits == 0)
            missing++;
    return missing;
}

/* Lines of serve.log that mention sid (at most max). */
static void s_print_log_lines(const run_t *run, const char *sid, int max)
{
    FILE *f = fopen(run->h.log_path, "r");
    if (!f)
        return;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max)
        if (strstr(line, sid)) {
            fprintf(stderr, "      | %s", line);
            n++;
        }
    fclose(f);
}

/* The known ways a reply is lost or doubled when the gateway dies between
 * its two steps of an inline answer (see docs/ARCHITECTURE.md, "The life
 * of a message", step 7), recognised from what the client saw and the
 * outbox row's state; NULL for anything else. */
static const char *s_diagnosis(const msg_rec_t *m, store_outbox_state_t state)
{
    if (m->inline_hits && m->rest_hits && state >= STORE_OUTBOX_SENT)
        return "the client got the inline TwiML, yet the row went to the sender: the session "
               "never received the inline verdict (the gateway died with it still in its ZMQ "
               "queue, after writing the TwiML) and re-offered to the next gateway, which "
               "did not know the request and said REST";
    if (!m->inline_hits && !m->rest_hits && state == STORE_OUTBOX_INLINE && m->deliveries > 1)
        return "the session recorded the inline verdict but the TwiML never reached the "
               "client (the gateway died between the two); the delivery made again was "
               "then treated as a duplicate of an answered message, so no reply carries it";
    if (m->rest_hits > 1)
        return "sent more than once through Twilio";
    return NULL;
}

/* Everything known about one message that went wrong. */
static void s_explain(const run_t *run, store_t *st, const msg_rec_t *m, const char *what)
{
    fprintf(stderr, "  %s %s sid=%s user=%d deliveries=%d failed=%d last_failure=%ld "
            "accepted=%d at %s answer=%s inline_hits=%d rest_hits=%d\n",
            what, m->token, m->sid, m->user, m->deliveries, m->failed, m->last_failure,
            m->accepted, m->accepted_at, m->answer, m->inline_hits, m->rest_hits);
    if (m->reply)
        fprintf(stderr, "    accepted reply: %s\n", m->reply);
    store_inbound_t in = { 0 };
    if (st && store_inbound_get(st, m->sid, &in) == SOUK_OK)
        fprintf(stderr, "    inbound: state=%s turn=%s\n", store_inbound_state_name(in.state),
                in.turn_sid ? in.turn_sid : "-");
    char key[48];
    snprintf(key, sizeof key, "r:%s", in.turn_sid ? in.turn_sid : m->sid);
    store_inbound_clear(&in);
    store_outbox_t o = { .state = (store_outbox_state_t)-1 };
    if (st && store_outbox_get(st, key, &o) == SOUK_OK)
        fprintf(stderr, "    outbox %s: state=%s attempts=%d twilio_sid=%s error=%d %s\n", key,
                store_outbox_state_name(o.state), o.attempts, o.twilio_sid ? o.twilio_sid : "-",
                o.error_code, o.error_reason ? o.error_reason : "");
    const char *why = s_diagnosis(m, o.state);
    if (why)
        fprintf(stderr, "    likely: %s\n", why);
    store_outbox_clear(&o);
    s_print_log_lines(run, m->sid, 40);
}

/* How often the recovery paths ran, from serve.log: evidence that the
 * kills landed in the windows they aim at. Printed as "name=count". */
static void s_print_recoveries(const run_t *run)
{
    static const char *const events[] = {
        "gateway.client_gone", "gateway.session_exit", "gateway.verdict_unsent",
        "session.inbound_pending_again", "session.inbound_duplicate", "session.resume",
        "session.resume_offer", "session.reoffer", "session.failed", "send.reconcile",
        "send.reconcile.found", "send.reconcile.absent", "send.retry", "send.unknown",
        "send.failed",
    };
    enum { NEVENTS = sizeof events / sizeof events[0] };
    int counts[NEVENTS] = { 0 };
    FILE *f = fopen(run->h.log_path, "r");
    if (!f)
        return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        const char *ev = strstr(line, " event=");
        if (!ev)
            continue;
        ev += strlen(" event=");
        size_t n = strcspn(ev, " \n");
        for (int i = 0; i < NEVENTS; i++)
            if (strlen(events[i]) == n && strncmp(ev, events[i], n) == 0)
                counts[i]++;
    }
    fclose(f);
    char out[1024] = "";
    size_t o = 0;
    for (int i = 0; i < NEVENTS; i++)
        if (counts[i] && o < sizeof out)
            o += (size_t)snprintf(out + o, sizeof out - o, " %s=%d", events[i], counts[i]);
    print_message("%s: recoveries:%s\n", run->sc->name, *out ? out : " none");
}

static void s_print_kills(const run_t *run)
{
    for (int i = 0; i < run->nkills; i++)
        fprintf(stderr, "  kill %s %s pid=%d %s (%d us into a delivery, aimed at %d)\n",
                run->kills[i].at, s_target_names[run->kills[i].target], (int)run->kills[i].pid,
                run->kills[i].name, run->kills[i].lag_us, run->kills[i].delay_us);
}

static uint64_t s_seed(void)
{
    const char *e = getenv("SOUK_KILL_SEED");
    if (e && *e)
        return strtoull(e, NULL, 0);
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != sizeof s)
        s = (uint64_t)souk_wall_ms() * 0x9e3779b97f4a7c15ull;
    return s;
}

/* Whether souk serve itself still runs (a zombie does not): this test
 * never kills it, so its end means something else went wrong. */
static bool s_serve_alive(const run_t *run)
{
    char state;
    pid_t ppid;
    return s_proc_stat(run->h.pid, &state, &ppid) && state != 'Z';
}

/* ---- a run: start, load, settle, check ------------------------------------------------ */

/* The messages, the fake, and souk serve. Returns 0, or -1 (nothing left running). */
static int s_start(run_t *run)
{
    const scenario_t *sc = run->sc;
    for (int u = 0; u < USERS; u++)
        for (int i = 0; i < PER_USER; i++) {
            msg_rec_t *m = &run->msgs[u * PER_USER + i];
            m->user = u;
            snprintf(m->sid, sizeof m->sid, "SM%016" PRIx64 "%08x%08x", run->seed, u, i);
            snprintf(m->token, sizeof m->token, "t-u%02d-m%02d.", u, i);
            snprintf(m->text, sizeof m->text, "msg t-u%02d-m%02d. from the kill test", u, i);
        }
    if (s_fake_start(&run->fake) != 0)
        return -1;
    if (sc->fake_delay_ms) {
        char rules[96];
        snprintf(rules, sizeof rules, "{\"rules\":[{\"delay_ms\":%d,\"times\":-1}]}",
                 sc->fake_delay_ms);
        json_decref(fake_proc_call(&run->fake, "POST", "/_fake/script", rules));
    }
    char base[64], budget[48], debounce[48];
    snprintf(base, sizeof base, "TWILIO_API_BASE=http://127.0.0.1:%d", run->fake.port);
    snprintf(budget, sizeof budget, "SOUK_REPLY_BUDGET_MS=%d", sc->budget_ms);
    snprintf(debounce, sizeof debounce, "SOUK_DEBOUNCE_MS=%d", sc->debounce_ms);
    const char *const env[] = {
        /* the echo answer carries the tokens replies are matched by */
        "SOUK_AGENT=echo", debounce, budget, "SOUK_HEARTBEAT_MS=100",
        /* the restart policy is not under test here: kills must not end
         * souk (intensity) nor quarantine the users (crash budget) */
        "SOUK_RESTART_MAX=1000", "SOUK_RESTART_WINDOW_S=1", "SOUK_QUARANTINE_CRASHES=1000",
        "SOUK_DRAIN_MS=2000",
        "TWILIO_ACCOUNT_SID=" ACCOUNT, base, "TWILIO_WHATSAPP_FROM=" FROM, NULL,
    };
    if (harness_start(&run->h, env) != 0) {
        fake_proc_stop(&run->fake);
        return -1;
    }
    return 0;
}

/* The users and the killer, until every user is done. */
static void s_load(run_t *run)
{
    pthread_t users[USERS], killer;
    user_arg_t args[USERS];
    for (int u = 0; u < USERS; u++) {
        args[u] = (user_arg_t){ run, u };
        assert_int_equal(pthread_create(&users[u], NULL, s_user_thread, &args[u]), 0);
    }
    assert_int_equal(pthread_create(&killer, NULL, s_killer_thread, run), 0);
    for (int u = 0; u < USERS; u++)
        pthread_join(users[u], NULL);
    pthread_join(killer, NULL);
}

typedef struct {
    int owed, missing, stray, rest_total;
} settled_t;

static void s_look(run_t *run, store_t *st, settled_t *out)
{
    json_t *seen = s_fake_seen(&run->fake);
    out->owed = st ? s_owed(st) : -1;
    out->missing = seen ? s_tally(run, seen, &out->stray, &out->rest_total) : -1;
    json_decref(seen);
}

/* Waits until souk owes nothing and every token has a reply (or
 * SETTLE_MS), then looks once more after a pause, for a double that
 * would come late. */
static void s_settle(run_t *run, store_t *st, settled_t *out)
{
    int64_t end = souk_now_ms() + SETTLE_MS;
    for (;;) {
        s_look(run, st, out);
        if ((out->owed == 0 && out->missing == 0) || souk_now_ms() > end)
            break;
        s_sleep_ms(100);
    }
    if (out->owed == 0 && out->missing == 0) {
        s_sleep_ms(QUIET_MS);
        s_look(run, st, out);
    }
}

typedef struct {
    int accepted, inline_n, later_n, none_n, lost, doubled, unaccepted, failed_deliveries;
    int inline_replies, rest_replies;
} verdict_t;

static void s_count(const run_t *run, verdict_t *v)
{
    memset(v, 0, sizeof *v);
    for (int i = 0; i < MSGS; i++) {
        const msg_rec_t *m = &run->msgs[i];
        v->failed_deliveries += m->failed;
        v->inline_replies += m->inline_hits;
        v->rest_replies += m->rest_hits;
        if (!m->accepted) {
            v->unaccepted++;
            continue;
        }
        v->accepted++;
        v->inline_n += strcmp(m->answer, "inline") == 0;
        v->later_n += strcmp(m->answer, "later") == 0;
        v->none_n += strcmp(m->answer, "none") == 0;
        int hits = m->inline_hits + m->rest_hits;
        v->lost += hits == 0;
        v->doubled += hits > 1;
    }
}

/* Every message that went wrong, with what the store and serve.log say. */
static void s_print_failures(const run_t *run, store_t *st, const settled_t *s,
                             const verdict_t *v)
{
    fprintf(stderr, "%s FAILED: unaccepted=%d lost=%d doubled=%d stray_rest=%d owed=%d "
            "(seed 0x%016" PRIx64 ", data kept in %s)\n", run->sc->name, v->unaccepted, v->lost,
            v->doubled, s->stray, s->owed, run->seed, run->h.data);
    if (!s_serve_alive(run))
        fprintf(stderr, "  souk serve itself is gone (this test never kills it): see the "
                "end of serve.log for who stopped it\n");
    for (int i = 0; i < MSGS; i++) {
        const msg_rec_t *m = &run->msgs[i];
        int hits = m->inline_hits + m->rest_hits;
        if (!m->accepted)
            s_explain(run, st, m, "UNACCEPTED");
        else if (hits == 0)
            s_explain(run, st, m, "LOST");
        else if (hits > 1)
            s_explain(run, st, m, "DOUBLED");
    }
    s_print_kills(run);
}

static void s_run(run_t *run)
{
    const scenario_t *sc = run->sc;
    run->seed = s_seed();
    print_message("%s: seed=0x%016" PRIx64 " (SOUK_KILL_SEED=0x%016" PRIx64 " to replay) "
                  "users=%d messages=%d budget_ms=%d debounce_ms=%d fake_delay_ms=%d\n",
                  sc->name, run->seed, run->seed, USERS, PER_USER, sc->budget_ms,
                  sc->debounce_ms, sc->fake_delay_ms);
    if (s_start(run) != 0)
        fail_msg("%s: the fake or souk serve did not start", sc->name);
    int64_t t0 = souk_now_ms();
    s_load(run);
    int64_t load_ms = souk_now_ms() - t0;

    char err[256] = "";
    store_t *st = NULL;
    if (store_open("sqlite", run->h.data, NULL, &st, err, sizeof err) != SOUK_OK)
        fprintf(stderr, "store_open: %s\n", err);
    settled_t s;
    s_settle(run, st, &s);
    int64_t settle_ms = souk_now_ms() - t0 - load_ms;
    verdict_t v;
    s_count(run, &v);
    print_message("%s: accepted=%d/%d (answer inline=%d later=%d none=%d) replies inline=%d "
                  "rest=%d (fake accepted %d) resends=%d failed_deliveries=%d kills=%d "
                  "(gateway=%d session=%d sender=%d, %d missed) load=%lldms settle=%lldms\n",
                  sc->name, v.accepted, MSGS, v.inline_n, v.later_n, v.none_n, v.inline_replies,
                  v.rest_replies, s.rest_total, atomic_load(&run->resends), v.failed_deliveries,
                  run->nkills, run->kills_by[T_GATEWAY], run->kills_by[T_SESSION],
                  run->kills_by[T_SENDER], run->kill_misses, (long long)load_ms,
                  (long long)settle_ms);
    s_print_recoveries(run);
    bool ok = v.unaccepted == 0 && v.lost == 0 && v.doubled == 0 && s.stray == 0 && s.owed == 0;
    if (!ok)
        s_print_failures(run, st, &s, &v);
    else if (getenv("KILL_DEBUG"))
        s_print_kills(run);
    store_close(&st);
    int code = harness_stop(&run->h, !ok);
    fake_proc_stop(&run->fake);
    for (int i = 0; i < MSGS; i++)
        free(run->msgs[i].reply);
    if (!ok)
        fail_msg("%s: %d lost, %d doubled, %d unaccepted, %d stray, %d owed", sc->name, v.lost,
                 v.doubled, v.unaccepted, s.stray, s.owed);
    assert_int_equal(code, 0);
}

/* ---- scenarios ------------------------------------------------------------------------ */

/* One run at a time; static, so a failing assertion (a longjmp) leaks
 * nothing. */
static run_t s_the_run;

static void s_scenario(const scenario_t *sc)
{
    memset(&s_the_run, 0, sizeof s_the_run);
    s_the_run.sc = sc;
    pthread_mutex_init(&s_the_run.lock, NULL);
    pthread_cond_init(&s_the_run.started, NULL);
    s_run(&s_the_run);
    pthread_cond_destroy(&s_the_run.started);
    pthread_mutex_destroy(&s_the_run.lock);
}

/* In every scenario users pause between messages, so that the load lasts
 * ~10-15 s and the kills find deliveries in every stage. */

/* The gateway, answering inline: requests lost mid-way (Twilio sends them
 * again), verdicts it sent but never wrote, offers it never answered (the
 * session offers again to the next one). Its pause starts when it is back
 * and mostly outlasts SOUK_RESTART_WINDOW_S (1 s), or its restart backoff
 * would keep growing. */
static void test_kill_gateway(void **state)
{
    (void)state;
    static const scenario_t sc = {
        .name = "kill_gateway", .targets = KILL_GATEWAY, .budget_ms = 1000,
        .think_min_ms = 0, .think_max_ms = 2000, .pause_min_ms = 600, .pause_max_ms = 1400,
        .near_lo_us = 0, .near_hi_us = 1200, .window_ms = 40,
    };
    s_scenario(&sc);
}

/* The gateway, acknowledging: the debounce holds every answer past the
 * budget (users pause longer than it, so each message is still its own
 * turn), so a kill lands while the request waits for its budget, after the
 * acknowledgement while the answer is being made, or at the offer. */
static void test_kill_gateway_later(void **state)
{
    (void)state;
    static const scenario_t sc = {
        .name = "kill_gateway_later", .targets = KILL_GATEWAY, .budget_ms = 50,
        .debounce_ms = 150, .think_min_ms = 400, .think_max_ms = 2000, .pause_min_ms = 600,
        .pause_max_ms = 1400, .near_lo_us = 0, .near_hi_us = 170000, .window_ms = 300,
    };
    s_scenario(&sc);
}

/* Session actors: killed while persisting, answering, offering, or waiting
 * for the verdict; restarted, they resume from the store. */
static void test_kill_sessions(void **state)
{
    (void)state;
    static const scenario_t sc = {
        .name = "kill_sessions", .targets = KILL_SESSION, .budget_ms = 1000,
        .think_min_ms = 0, .think_max_ms = 2000, .pause_min_ms = 20, .pause_max_ms = 300,
        .near_lo_us = 0, .near_hi_us = 1500, .window_ms = 40,
    };
    s_scenario(&sc);
}

/* The sender: every reply goes through it (the debounce holds each answer
 * past the budget; users pause longer than it, so each message is still
 * its own turn), and the fake answers each POST 30 ms after recording it,
 * so kills land between "Twilio has it" and "the sender knows". */
static void test_kill_sender(void **state)
{
    (void)state;
    static const scenario_t sc = {
        .name = "kill_sender", .targets = KILL_SENDER, .budget_ms = 50, .debounce_ms = 150,
        .fake_delay_ms = 30, .think_min_ms = 400, .think_max_ms = 2000, .pause_min_ms = 0,
        .pause_max_ms = 400, .near_lo_us = 150000, .near_hi_us = 190000, .window_ms = 300,
    };
    s_scenario(&sc);
}

/* All three, with debounce off and a short budget: replies go inline or,
 * after a kill, through the sender, which is killed too. */
static void test_kill_all(void **state)
{
    (void)state;
    static const scenario_t sc = {
        .name = "kill_all", .targets = KILL_GATEWAY | KILL_SESSION | KILL_SENDER,
        .budget_ms = 50, .fake_delay_ms = 30, .think_min_ms = 0, .think_max_ms = 2000,
        .pause_min_ms = 50, .pause_max_ms = 600, .near_lo_us = 0, .near_hi_us = 1500,
        .window_ms = 200,
    };
    s_scenario(&sc);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_gateway),
        cmocka_unit_test(test_kill_gateway_later),
        cmocka_unit_test(test_kill_sessions),
        cmocka_unit_test(test_kill_sender),
        cmocka_unit_test(test_kill_all),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
