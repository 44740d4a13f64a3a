/* Speech to text (souk/stt.h) with the real pocketsphinx.
 *
 * The voice notes are made here, as a customer's phone would send them:
 * espeak-ng says each phrase of tests/voice_phrases.txt, opusenc encodes
 * it as Ogg/Opus. The shop's speech model is the one `souk import` writes
 * for the demo catalogue. The word error rate over the phrase set is
 * printed for both the shop model (with its generic fallback) and the
 * generic model alone, and bounded.
 *
 * SOUK_STT=openai is tested against tests/fakes/openai_audio_fake.py, a
 * local fake that follows OpenAI's documented transcription API (OpenAI
 * cannot be reached from here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fake_proc.h"
#include "slurp.h"
#include "voice_note.h"
#include "souk/error.h"
#include "souk/stt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The bound on the shop model's word error rate over the phrase set
 * (measured here: see docs/BENCHMARKS.md); the generic model's is far
 * higher. */
#define WER_MAX 0.10

#define PHRASES_MAX 64

static char s_dir[64];
static char *s_phrases[PHRASES_MAX];
static size_t s_n;

static int s_run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "failed (%d): %s\n", rc, cmd);
    return rc;
}

static int s_setup(void **state)
{
    (void)state;
    strcpy(s_dir, "/tmp/souk-stt-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    const char *src = getenv("SOUK_SRC");
    char path[1024], cmd[2048];
    snprintf(path, sizeof path, "%s/tests/voice_phrases.txt", src ? src : ".");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    while (s_n < PHRASES_MAX && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (*line && *line != '#')
            s_phrases[s_n++] = strdup(line);
    }
    fclose(f);
    for (size_t i = 0; i < s_n; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%02zu", i);
        if (voice_note_say(s_dir, name, s_phrases[i]) != 0)
            return -1;
    }
    /* the shop's model, as `souk import` writes it for the demo shop */
    snprintf(cmd, sizeof cmd, "SOUK_DATA=%s/data %s import %s/data/demo/products.jsonl >/dev/null 2>&1",
             s_dir, getenv("SOUK_BIN"), src ? src : ".");
    return s_run(cmd);
}

static int s_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < s_n; i++)
        free(s_phrases[i]);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int s_transcribe(size_t i, const char *shop_dir, stt_result_t *r)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/p%02zu.ogg", s_dir, i);
    size_t len = 0;
    char *ogg = slurp(path, &len);
    assert_non_null(ogg);
    int16_t *pcm = NULL;
    size_t n = 0;
    int rc = stt_decode_ogg(ogg, len, &pcm, &n, err, sizeof err);
    free(ogg);
    assert_int_equal(rc, SOUK_OK);
    assert_true(n > STT_RATE / 2);          /* at least half a second at 16 kHz */
    stt_sphinx_t opt = { .shop_dir = shop_dir };
    rc = stt_sphinx_transcribe(&opt, pcm, n, r, err, sizeof err);
    free(pcm);
    if (rc != SOUK_OK)
        fprintf(stderr, "transcribe: %s\n", err);
    return rc;
}

static void test_wer(void **state)
{
    (void)state;
    char shop[96];
    snprintf(shop, sizeof shop, "%s/data/stt", s_dir);
    size_t edits_shop = 0, edits_generic = 0, words = 0;
    printf("%-34s | %-34s | %s\n", "phrase", "shop model (fallback: generic)", "generic model");
    for (size_t i = 0; i < s_n; i++) {
        stt_result_t a, b;
        assert_int_equal(s_transcribe(i, shop, &a), SOUK_OK);
        assert_int_equal(s_transcribe(i, NULL, &b), SOUK_OK);
        assert_string_equal(b.model, "generic");
        size_t e1, e2, w;
        stt_wer(s_phrases[i], a.text, &e1, &w);
        stt_wer(s_phrases[i], b.text, &e2, NULL);
        edits_shop += e1;
        edits_generic += e2;
        words += w;
        printf("%-34s | %-26s %s %.2f | %s\n", s_phrases[i], a.text, a.model, a.confidence, b.text);
        stt_result_clear(&a);
        stt_result_clear(&b);
    }
    double wer_shop = (double)edits_shop / (double)words;
    double wer_generic = (double)edits_generic / (double)words;
    printf("WER over %zu phrases (%zu words): shop model %.1f%%, generic model %.1f%%\n", s_n,
           words, 100 * wer_shop, 100 * wer_generic);
    assert_true(wer_shop <= WER_MAX);
    assert_true(wer_shop < wer_generic);
}

/* The example, exactly. */
static void test_running_shoes(void **state)
{
    (void)state;
    char shop[96];
    snprintf(shop, sizeof shop, "%s/data/stt", s_dir);
    assert_string_equal(s_phrases[0], "show me running shoes");
    stt_result_t r;
    assert_int_equal(s_transcribe(0, shop, &r), SOUK_OK);
    assert_string_equal(r.text, "show me running shoes");
    assert_string_equal(r.model, "shop");
    assert_true(r.audio_ms > 1000 && r.audio_ms < 4000);
    stt_result_clear(&r);
}

/* Speech the shop's model cannot explain: its posterior is very low, the
 * generic model decodes it too and wins when much surer, and the result is
 * marked unsure (the reply then says what was heard). */
static void test_out_of_domain(void **state)
{
    (void)state;
    assert_int_equal(voice_note_say(s_dir, "ood", "my grandmother plays the violin"), 0);
    char path[128], shop[96], err[256];
    snprintf(path, sizeof path, "%s/ood.ogg", s_dir);
    snprintf(shop, sizeof shop, "%s/data/stt", s_dir);
    size_t len = 0, n = 0;
    char *ogg = slurp(path, &len);
    assert_non_null(ogg);
    int16_t *pcm = NULL;
    assert_int_equal(stt_decode_ogg(ogg, len, &pcm, &n, err, sizeof err), SOUK_OK);
    stt_sphinx_t opt = { .shop_dir = shop };
    stt_result_t r;
    assert_int_equal(stt_sphinx_transcribe(&opt, pcm, n, &r, err, sizeof err), SOUK_OK);
    printf("out of domain: \"%s\" (%s, %.3f)\n", r.text, r.model, r.confidence);
    assert_string_equal(r.model, "generic");
    assert_non_null(strstr(r.text, "grandmother"));  /* not in the shop's vocabulary */
    assert_true(r.confidence < STT_MIN_CONFIDENCE);
    stt_result_clear(&r);
    free(pcm);
    free(ogg);
}

static void test_not_ogg(void **state)
{
    (void)state;
    int16_t *pcm;
    size_t n;
    char err[128];
    assert_int_equal(stt_decode_ogg("RIFF....WAVEfmt ", 16, &pcm, &n, err, sizeof err), SOUK_EINVAL);
    assert_null(pcm);
}

static void test_wer_arithmetic(void **state)
{
    (void)state;
    size_t e, w;
    assert_true(stt_wer("show me running shoes", "Show me, running shoes!", &e, &w) == 0.0);
    assert_int_equal(w, 4);
    assert_true(stt_wer("show me running shoes", "so we running through", &e, &w) == 0.75);
    assert_int_equal(e, 3);
    assert_true(stt_wer("show me shoes", "show me red shoes", &e, NULL) > 0.33);
    assert_int_equal(e, 1);
    assert_true(stt_wer("", "", NULL, NULL) == 0.0);
    assert_true(stt_wer("a b", "", &e, NULL) == 1.0);
}

/* The model file is ARPA text pocketsphinx reads: the header's counts match
 * the sections, and every word has a pronunciation. */
static void test_model_files(void **state)
{
    (void)state;
    stt_lm_t *lm = stt_lm_new();
    assert_non_null(lm);
    assert_int_equal(stt_lm_add(lm, "Show me running shoes!"), SOUK_OK);
    assert_int_equal(stt_lm_add(lm, "show me the xqzzyv"), SOUK_OK); /* not in CMUdict */
    assert_int_equal(stt_lm_add_tsv(lm, "# comment\nproduct_search\tdo you have shoes\n"), SOUK_OK);
    char dir[96], path[128], err[256];
    snprintf(dir, sizeof dir, "%s/lm", s_dir);
    size_t words = 0;
    assert_int_equal(stt_lm_write(lm, dir, NULL, &words, err, sizeof err), SOUK_OK);
    stt_lm_destroy(&lm);
    assert_null(lm);
    assert_int_equal(words, 8); /* show me running shoes the do you have */
    size_t len;
    snprintf(path, sizeof path, "%s/shop.lm", dir);
    char *arpa = slurp(path, &len);
    assert_non_null(arpa);
    assert_non_null(strstr(arpa, "ngram 1=10\n"));      /* + <s> </s> */
    assert_non_null(strstr(arpa, " running shoes\n"));
    assert_null(strstr(arpa, "xqzzyv"));
    assert_null(strstr(arpa, "product_search"));
    free(arpa);
    snprintf(path, sizeof path, "%s/shop.dict", dir);
    char *dict = slurp(path, &len);
    assert_non_null(dict);
    assert_non_null(strstr(dict, "running "));
    assert_null(strstr(dict, "xqzzyv"));
    free(dict);
}

static void test_openai(void **state)
{
    (void)state;
    fake_proc_t fake;
    const char *args[] = { "--api-key", "sk-test-key", "--text", "Show me running shoes.", NULL };
    assert_int_equal(fake_proc_start(&fake, "openai_audio_fake.py", args), 0);
    char base[64], path[128], err[256];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", fake.port);
    snprintf(path, sizeof path, "%s/p00.ogg", s_dir);
    size_t len;
    char *ogg = slurp(path, &len);
    assert_non_null(ogg);
    stt_openai_t o = { .base_url = base, .api_key = "sk-test-key", .audio = ogg, .len = len,
                       .content_type = "audio/ogg", .filename = "voice.ogg", .timeout_ms = 10000 };
    stt_result_t r;
    assert_int_equal(stt_openai_transcribe(&o, &r, err, sizeof err), SOUK_OK);
    assert_string_equal(r.text, "Show me running shoes.");
    assert_string_equal(r.language, "english");
    assert_string_equal(r.model, "openai");
    stt_result_clear(&r);
    /* a wrong key is the service's 401: an error, and the key is not in it */
    o.api_key = "sk-wrong";
    assert_int_equal(stt_openai_transcribe(&o, &r, err, sizeof err), SOUK_EIO);
    assert_non_null(strstr(err, "401"));
    assert_null(strstr(err, "sk-wrong"));
    free(ogg);
    fake_proc_stop(&fake);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wer_arithmetic),
        cmocka_unit_test(test_model_files),
        cmocka_unit_test(test_not_ogg),
        cmocka_unit_test(test_running_shoes),
        cmocka_unit_test(test_out_of_domain),
        cmocka_unit_test(test_wer),
        cmocka_unit_test(test_openai),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
