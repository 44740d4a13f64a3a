/* Voice notes and media end to end: a real `souk serve` (builtin agent,
 * the demo shop imported, so its speech model is built), webhooks signed as
 * Twilio signs them, carrying MediaUrl0 / Latitude as Twilio's do.
 *
 * Twilio cannot be reached from here: tests/fakes/media_fake.py plays it,
 * following its documented contract — the media URL on the API host wants
 * Basic auth and redirects to a CDN host, and the sender's outbound
 * messages (Messages.json) are accepted and recorded there. The voice note
 * is made with espeak-ng and opusenc, and transcribed by the real
 * pocketsphinx in the session actor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fake_proc.h"
#include "harness.h"
#include "voice_note.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCOUNT "AC5e55a5e55a5e55a5e55a5e55a5e55a5"
#define FROM "whatsapp:+14155238886"
#define ANA "15550001111"
#define BOB "15550002222"
#define CARA "15550003333"
#define DAN "15550004444"
#define EVE "15550005555"
#define FAY "15550006666"

static harness_t s_h;
static fake_proc_t s_fake;
static char s_dir[64];
static bool s_started;

static int s_setup(void **state)
{
    (void)state;
    strcpy(s_dir, "/tmp/souk-voice-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "head -c 2000 /dev/urandom > %s/MEpic.jpg", s_dir);
    if (voice_note_say(s_dir, "MEvoice", "show me running shoes") != 0 ||
        voice_note_say(s_dir, "MEood", "my grandmother plays the violin") != 0 || system(cmd) != 0)
        return -1;
    const char *args[] = { "--dir", s_dir, "--account-sid", ACCOUNT, "--auth-token",
                           HARNESS_TOKEN, NULL };
    if (fake_proc_start(&s_fake, "media_fake.py", args) != 0 || harness_prepare(&s_h) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "import %s/data/demo/products.jsonl",
             getenv("SOUK_SRC") ? getenv("SOUK_SRC") : ".");
    if (harness_cli(&s_h, cmd, NULL) != 0)
        return -1;
    char base[96];
    snprintf(base, sizeof base, "TWILIO_API_BASE=http://127.0.0.1:%d", s_fake.port);
    const char *env[] = { "SOUK_AGENT=builtin", "SOUK_DEBOUNCE_MS=0", "TWILIO_ACCOUNT_SID=" ACCOUNT,
                          base, "TWILIO_WHATSAPP_FROM=" FROM, "SOUK_MEDIA_HOSTS=127.0.0.1,localhost",
                          "SOUK_STT=pocketsphinx",
                          /* transcribing takes longer than three of these:
                           * a session that stopped heartbeating meanwhile
                           * would be killed as hung (test_heartbeats) */
                          "SOUK_HEARTBEAT_MS=100", NULL };
    if (harness_start_prepared(&s_h, env) != 0)
        return -1;
    s_started = true;
    return 0;
}

static int s_teardown(void **state);

/* The same shop with SOUK_STT=openai, against the local fake of OpenAI's
 * transcription API (tests/fakes/openai_audio_fake.py, which follows the
 * documented contract), scripted to hear "show me some sunglasses". */
static fake_proc_t s_openai;

static int s_setup_openai(void **state)
{
    const char *args[] = { "--api-key", "sk-test-voice", "--text", "Show me some sunglasses.",
                           NULL };
    if (s_setup(state) != 0 || fake_proc_start(&s_openai, "openai_audio_fake.py", args) != 0)
        return -1;
    harness_stop(&s_h, false);
    s_started = false;
    if (harness_prepare(&s_h) != 0)
        return -1;
    char cmd[1024], base[96], openai[96];
    snprintf(cmd, sizeof cmd, "import %s/data/demo/products.jsonl",
             getenv("SOUK_SRC") ? getenv("SOUK_SRC") : ".");
    if (harness_cli(&s_h, cmd, NULL) != 0)
        return -1;
    snprintf(base, sizeof base, "TWILIO_API_BASE=http://127.0.0.1:%d", s_fake.port);
    snprintf(openai, sizeof openai, "OPENAI_BASE_URL=http://127.0.0.1:%d/v1", s_openai.port);
    const char *env[] = { "SOUK_AGENT=builtin", "SOUK_DEBOUNCE_MS=0", "TWILIO_ACCOUNT_SID=" ACCOUNT,
                          base, "TWILIO_WHATSAPP_FROM=" FROM, "SOUK_MEDIA_HOSTS=127.0.0.1,localhost",
                          "SOUK_STT=openai", openai, "OPENAI_API_KEY=sk-test-voice", NULL };
    if (harness_start_prepared(&s_h, env) != 0)
        return -1;
    s_started = true;
    return 0;
}

static int s_teardown_openai(void **state)
{
    fake_proc_stop(&s_openai);
    return s_teardown(state);
}

static int s_teardown(void **state)
{
    (void)state;
    if (s_started)
        harness_stop(&s_h, false);
    fake_proc_stop(&s_fake);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Appends name=value, form-encoded. */
static void s_form(FILE *f, const char *name, const char *value)
{
    fprintf(f, "%s%s=", ftell(f) ? "&" : "", name);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
            || strchr("-._~", *p))
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
}

/* Posts a signed webhook from waid with extra "name", "value" pairs. */
static void s_post(const char *waid, const char *sid, const char *const *extra,
                   harness_reply_t *out)
{
    char *body = NULL, from[64], sig[64];
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    assert_non_null(f);
    snprintf(from, sizeof from, "whatsapp:+%s", waid);
    s_form(f, "MessageSid", sid);
    s_form(f, "SmsMessageSid", sid);
    s_form(f, "AccountSid", ACCOUNT);
    s_form(f, "From", from);
    s_form(f, "To", FROM);
    s_form(f, "WaId", waid);
    s_form(f, "ProfileName", "Tester");
    for (size_t i = 0; extra[i]; i += 2)
        s_form(f, extra[i], extra[i + 1]);
    fclose(f);
    assert_int_equal(harness_sign("/webhooks/whatsapp", body, sig), 0);
    assert_int_equal(harness_post_raw(&s_h, "/webhooks/whatsapp",
                                      "application/x-www-form-urlencoded", body, sig, out), 0);
    free(body);
    assert_int_equal(out->status, 200);
}

/* The fake's URL of media `name` of message sid, as Twilio gives it. */
static void s_media_url(char url[256], const char *sid, const char *name)
{
    snprintf(url, 256, "http://127.0.0.1:%d/2010-04-01/Accounts/" ACCOUNT "/Messages/%s/Media/%s",
             s_fake.port, sid, name);
}

/* Posts a message from waid with body and one media: at url, of content
 * type ctype, WhatsApp's MessageType type. */
static void s_post_media(const char *waid, const char *sid, const char *body, const char *url,
                         const char *ctype, const char *type, harness_reply_t *out)
{
    const char *extra[] = { "Body", body, "NumMedia", "1", "MediaUrl0", url, "MediaContentType0",
                            ctype, "MessageType", type, NULL };
    s_post(waid, sid, extra, out);
}

/* A GET on the fake (its control endpoints, some held until what they wait
 * for has come); the answer parsed. */
static json_t *s_fake_get(const char *path)
{
    return fake_proc_call_ms(&s_fake, "GET", path, NULL, 120000);
}

/* The body of the first outbound message to waid, waiting (the fake holds
 * the request until it has one) up to 90 s. Caller frees. */
static char *s_outbound(const char *waid, size_t skip)
{
    char to[64];
    snprintf(to, sizeof to, "whatsapp:+%s", waid);
    for (size_t want = 1; want < 64; want++) {
        char path[96];
        snprintf(path, sizeof path, "/_fake/messages?count=%zu&timeout_ms=90000", want);
        json_t *doc = s_fake_get(path);
        json_t *list = json_object_get(doc, "messages");
        if (json_array_size(list) < want) {
            json_decref(doc);
            return NULL;
        }
        size_t seen = 0;
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *m = json_array_get(list, i);
            if (strcmp(json_string_value(json_object_get(m, "To")), to) == 0 && seen++ == skip) {
                char *body = strdup(json_string_value(json_object_get(m, "Body")));
                json_decref(doc);
                return body;
            }
        }
        json_decref(doc);
    }
    return NULL;
}

/* "show me running shoes", said: acknowledged at once, transcribed by
 * pocketsphinx, searched; the shoes arrive by REST. */
static void test_voice_note_reaches_search(void **state)
{
    (void)state;
    char url[256];
    s_media_url(url, "MM00000000000000000000000000voice", "MEvoice.ogg");
    harness_reply_t r = { 0 };
    s_post_media(ANA, "MM00000000000000000000000000voice", "", url, "audio/ogg", "audio", &r);
    assert_string_equal(r.answer, "later");
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "listening"));
    harness_reply_clear(&r);
    char *reply = s_outbound(ANA, 0);
    assert_non_null(reply);
    printf("reply to the voice note: %s\n", reply);
    /* the search's answer: shoes from the catalogue, with prices */
    assert_non_null(strstr(reply, "$"));
    assert_true(strstr(reply, "Shoes") || strstr(reply, "Sneakers") || strstr(reply, "Trainers"));
    assert_null(strstr(reply, "I heard"));   /* the shop model was sure */
    free(reply);
    /* the credentials went to the API host only, the bytes came from the CDN host */
    json_t *log = s_fake_get("/_fake/log");
    json_t *reqs = json_object_get(log, "requests");
    bool api = false, cdn = false;
    for (size_t i = 0; i < json_array_size(reqs); i++) {
        json_t *q = json_array_get(reqs, i);
        const char *path = json_string_value(json_object_get(q, "path"));
        if (strstr(path, "/Media/MEvoice.ogg")) {
            api = true;
            assert_true(json_is_true(json_object_get(q, "auth")));
        } else if (strcmp(path, "/cdn/MEvoice.ogg") == 0) {
            cdn = true;
            assert_true(json_is_false(json_object_get(q, "auth")));
            assert_non_null(strstr(json_string_value(json_object_get(q, "host")), "localhost"));
        }
    }
    assert_true(api && cdn);
    json_decref(log);
}

/* A voice note the recogniser is unsure of: the reply says what was heard. */
static void test_unsure_says_what_was_heard(void **state)
{
    (void)state;
    char url[256];
    s_media_url(url, "MM0000000000000000000000000000ood", "MEood.ogg");
    harness_reply_t r = { 0 };
    s_post_media(DAN, "MM0000000000000000000000000000ood", "", url, "audio/ogg; codecs=opus",
                 "audio", &r);
    assert_string_equal(r.answer, "later");
    harness_reply_clear(&r);
    char *reply = s_outbound(DAN, 0);
    assert_non_null(reply);
    printf("reply to the unsure voice note: %s\n", reply);
    /* what was heard is the generic model's "my grandmother …" (the shop's
     * model cannot explain it), or the shop's own guess "my …" */
    assert_non_null(strstr(reply, "I heard: \xE2\x80\x9Cmy "));
    free(reply);
}

/* A voice note on a host off the allow-list (a forged webhook, say) is
 * never fetched; the user is asked to say it again or type it. */
static void test_forbidden_host_not_fetched(void **state)
{
    (void)state;
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.2:%d/cdn/MEvoice.ogg", s_fake.port);
    harness_reply_t r = { 0 };
    s_post_media(EVE, "MM000000000000000000000000forbid", "", url, "audio/ogg", "audio", &r);
    assert_string_equal(r.answer, "later");
    harness_reply_clear(&r);
    char *reply = s_outbound(EVE, 0);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "couldn't make out your voice note"));
    free(reply);
    json_t *log = s_fake_get("/_fake/log");
    json_t *reqs = json_object_get(log, "requests");
    for (size_t i = 0; i < json_array_size(reqs); i++)
        assert_null(strstr(json_string_value(json_object_get(json_array_get(reqs, i), "host")),
                           "127.0.0.2"));
    json_decref(log);
}

/* The session is killed while it transcribes: the restarted one resumes
 * the turn from the store, transcribes again, and the user gets exactly
 * one reply. */
static void test_killed_while_transcribing(void **state)
{
    (void)state;
    char url[256];
    s_media_url(url, "MM00000000000000000000000000kill", "MEood.ogg");
    harness_reply_t r = { 0 };
    s_post_media(FAY, "MM00000000000000000000000000kill", "", url, "audio/ogg", "audio", &r);
    assert_string_equal(r.answer, "later");   /* DEFER came: the transcription is under way */
    harness_reply_clear(&r);
    pid_t pid = harness_actor_pid(&s_h, "s-" FAY);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    char *reply = s_outbound(FAY, 0);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "I heard"));
    free(reply);
    /* and no second one: the outbox key is the message's */
    json_t *doc = s_fake_get("/_fake/messages?count=1000&timeout_ms=1500");
    json_t *list = json_object_get(doc, "messages");
    size_t to_fay = 0;
    for (size_t i = 0; i < json_array_size(list); i++)
        to_fay += strcmp(json_string_value(json_object_get(json_array_get(list, i), "To")),
                         "whatsapp:+" FAY) == 0;
    json_decref(doc);
    assert_int_equal(to_fay, 1);
}

/* Two models decoded in that session, far longer than three heartbeat
 * intervals, and no actor was found hung: the session heartbeats while
 * the worker thread transcribes. */
static void test_heartbeats(void **state)
{
    (void)state;
    souk_msg_t m;
    if (harness_wait_event(&s_h, "hung", NULL, 300, &m) == 0) {
        fprintf(stderr, "hung: %s\n", m.event.name);
        souk_msg_clear(&m);
        fail();
    }
    json_t *st = harness_status(&s_h);
    assert_non_null(st);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(st, "actors"), i, a)
        assert_int_equal(json_integer_value(json_object_get(a, "restarts")), 0);
    json_decref(st);
}

/* A picture gets a helpful answer at once; nothing is downloaded. */
static void test_image_gets_helpful_answer(void **state)
{
    (void)state;
    char url[256];
    s_media_url(url, "MM0000000000000000000000000image", "MEpic.jpg");
    harness_reply_t r = { 0 };
    s_post_media(BOB, "MM0000000000000000000000000image", "", url, "image/jpeg", "image", &r);
    assert_string_equal(r.answer, "inline");
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "picture"));
    assert_non_null(strstr(r.message, "in words"));
    harness_reply_clear(&r);
    /* a sticker too, in its own words */
    s_post_media(BOB, "MM000000000000000000000000sticker", "", url, "image/webp", "sticker", &r);
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "sticker"));
    harness_reply_clear(&r);
    /* a document and a video, each in its own words */
    s_post_media(BOB, "MM00000000000000000000000000pdf0", "", url, "application/pdf", "document", &r);
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "can't open documents"));
    harness_reply_clear(&r);
    s_post_media(BOB, "MM0000000000000000000000000video", "", url, "video/mp4", "video", &r);
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "can't watch videos"));
    harness_reply_clear(&r);
    /* a picture with a caption: the note, then the caption answered */
    s_post_media(BOB, "MM00000000000000000000000caption", "do you have red lipstick", url,
                 "image/jpeg", "image", &r);
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "picture"));
    assert_non_null(strstr(r.message, "$"));
    harness_reply_clear(&r);
    json_t *log = s_fake_get("/_fake/log");
    json_t *reqs = json_object_get(log, "requests");
    for (size_t i = 0; i < json_array_size(reqs); i++)
        assert_null(strstr(json_string_value(json_object_get(json_array_get(reqs, i), "path")),
                           "MEpic"));
    json_decref(log);
}

/* A location is the delivery address of the next order. */
static void test_location_on_next_order(void **state)
{
    (void)state;
    const char *extra[] = { "Body", "", "NumMedia", "0", "MessageType", "location", "Latitude",
                            "51.5074", "Longitude", "-0.1278", "Address", "10 Downing Street",
                            "Label", "Home", NULL };
    harness_reply_t r = { 0 };
    s_post(CARA, "MM00000000000000000000000location", extra, &r);
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "delivery address"));
    assert_non_null(strstr(r.message, "10 Downing Street"));
    harness_reply_clear(&r);
    assert_int_equal(harness_send(&s_h, CARA, "Cara", "I'll take 2 Essence mascaras", NULL, NULL, &r), 0);
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "YES"));
    harness_reply_clear(&r);
    assert_int_equal(harness_send(&s_h, CARA, "Cara", "YES", NULL, NULL, &r), 0);
    harness_reply_clear(&r);
    char *placed = s_outbound(CARA, 0);
    assert_non_null(placed);
    assert_non_null(strstr(placed, "is placed"));
    free(placed);
    json_t *orders = harness_cli_json(&s_h, "orders --json");
    assert_non_null(orders);
    json_t *list = json_is_array(orders) ? orders : json_object_get(orders, "orders");
    bool found = false;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *o = json_array_get(list, i);
        const char *note = json_string_value(json_object_get(o, "note"));
        if (note && strstr(note, "Deliver to: 51.50740,-0.12780 10 Downing Street (Home)"))
            found = true;
    }
    if (!found)
        printf("orders: %s\n", json_dumps(orders, 0));
    assert_true(found);
    json_decref(orders);
}

/* SOUK_STT=openai: the note goes to /v1/audio/transcriptions as
 * multipart (whisper-1), and the transcript is searched. */
static void test_openai_transcription(void **state)
{
    (void)state;
    char url[256];
    s_media_url(url, "MM000000000000000000000000openai", "MEvoice.ogg");
    harness_reply_t r = { 0 };
    s_post_media(ANA, "MM000000000000000000000000openai", "", url, "audio/ogg", "audio", &r);
    assert_string_equal(r.answer, "later");
    harness_reply_clear(&r);
    char *reply = s_outbound(ANA, 0);
    assert_non_null(reply);
    printf("reply (openai): %.60s...\n", reply);
    assert_non_null(strstr(reply, "sunglasses"));
    assert_non_null(strstr(reply, "$"));
    free(reply);
    json_t *log = fake_proc_call(&s_openai, "GET", "/_fake/log", NULL);
    assert_non_null(log);
    json_t *q = json_array_get(json_object_get(log, "requests"), 0);
    assert_string_equal(json_string_value(json_object_get(q, "model")), "whisper-1");
    assert_true(json_is_true(json_object_get(q, "auth")));
    assert_true(json_integer_value(json_object_get(q, "bytes")) > 1000);
    json_decref(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_voice_note_reaches_search),
        cmocka_unit_test(test_unsure_says_what_was_heard),
        cmocka_unit_test(test_forbidden_host_not_fetched),
        cmocka_unit_test(test_heartbeats),
        cmocka_unit_test(test_killed_while_transcribing),
        cmocka_unit_test(test_image_gets_helpful_answer),
        cmocka_unit_test(test_location_on_next_order),
    };
    const struct CMUnitTest openai[] = {
        cmocka_unit_test(test_openai_transcription),
    };
    int failed = cmocka_run_group_tests(tests, s_setup, s_teardown);
    return failed + cmocka_run_group_tests(openai, s_setup_openai, s_teardown_openai);
}
