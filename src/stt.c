/* stt: a voice note to text with pocketsphinx (see souk/stt.h).
 *
 * libpocketsphinx (with libsphinxbase, which it needs), libopusfile and
 * libsoxr are dlopen'ed on first use (src/dl.h), as libcurl is: every
 * session actor is a process of its own, and one that never gets a voice
 * note should not load four more libraries (and libgomp) at exec. The
 * sphinxbase functions are resolved through libpocketsphinx's handle,
 * whose dependencies dlsym searches too. */
#include "souk/stt.h"

#include "dl.h"
#include "souk/error.h"

#include <opusfile.h>
#include <pocketsphinx.h>
#include <soxr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the libraries ------------------------------------------------------- */

#define PS_FUNCTIONS(X)                                                                     \
    X(ps_args) X(ps_init) X(ps_free) X(ps_start_utt) X(ps_process_raw) X(ps_end_utt)        \
    X(ps_get_hyp) X(ps_get_prob) X(ps_get_logmath) X(cmd_ln_init) X(cmd_ln_free_r)          \
    X(logmath_exp)
#define OPUS_FUNCTIONS(X) X(op_open_memory) X(op_read_float_stereo) X(op_free)
#define SOXR_FUNCTIONS(X) X(soxr_oneshot) X(soxr_io_spec) X(soxr_quality_spec)

#define MEMBER(name) __typeof__(name) *name;
#define NAME(name) #name,
typedef struct { PS_FUNCTIONS(MEMBER) } ps_fns_t;
typedef struct { OPUS_FUNCTIONS(MEMBER) } opus_fns_t;
typedef struct { SOXR_FUNCTIONS(MEMBER) } soxr_fns_t;
static const char *const s_ps_names[] = { PS_FUNCTIONS(NAME) };
static const char *const s_opus_names[] = { OPUS_FUNCTIONS(NAME) };
static const char *const s_soxr_names[] = { SOXR_FUNCTIONS(NAME) };
#undef MEMBER
#undef NAME

static ps_fns_t s_ps_table;
static opus_fns_t s_opus_table;
static soxr_fns_t s_soxr_table;
#define LIB(var, so, pkg, names_, table_)                                                   \
    static souk_dl_t var = {                                                                \
        .soname = so, .package = pkg, .names = names_,                                      \
        .count = sizeof names_ / sizeof names_[0], .table = &table_,                        \
        .lock = PTHREAD_MUTEX_INITIALIZER,                                                  \
    };                                                                                      \
    _Static_assert(sizeof table_ == sizeof names_ / sizeof names_[0] * sizeof(void *), #table_)
LIB(s_ps_lib, "libpocketsphinx.so.3", "libpocketsphinx3", s_ps_names, s_ps_table);
LIB(s_opus_lib, "libopusfile.so.0", "libopusfile0", s_opus_names, s_opus_table);
LIB(s_soxr_lib, "libsoxr.so.0", "libsoxr0", s_soxr_names, s_soxr_table);
#undef LIB

#define PS ((const ps_fns_t *)souk_dl_table(&s_ps_lib))
#define OPUS ((const opus_fns_t *)souk_dl_table(&s_opus_lib))
#define SOXR ((const soxr_fns_t *)souk_dl_table(&s_soxr_lib))

int stt_load(char *err, size_t errlen)
{
    int rc = souk_dl_load(&s_opus_lib, err, errlen);
    if (rc == SOUK_OK)
        rc = souk_dl_load(&s_soxr_lib, err, errlen);
    if (rc == SOUK_OK)
        rc = souk_dl_load(&s_ps_lib, err, errlen);
    return rc;
}

void stt_result_clear(stt_result_t *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->language);
    memset(r, 0, sizeof *r);
}

/* ---- Ogg/Opus to 16 kHz mono ----------------------------------------------- */

int stt_decode_ogg(const void *data, size_t len, int16_t **pcm, size_t *n, char *err,
                   size_t errlen)
{
    *pcm = NULL;
    *n = 0;
    int rc = stt_load(err, errlen);
    if (rc != SOUK_OK)
        return rc;
    int oerr = 0;
    OggOpusFile *of = OPUS->op_open_memory(data, len, &oerr);
    if (!of) {
        snprintf(err, errlen, "not an Ogg/Opus file (opusfile error %d)", oerr);
        return SOUK_EINVAL;
    }
    /* opusfile always decodes at 48 kHz; stereo is mixed down here */
    size_t cap = 48000, got = 0, max = (size_t)48000 * STT_MAX_SECONDS;
    float *mono = malloc(cap * sizeof *mono);
    static const int frame = 5760 * 2; /* 120 ms of stereo, opusfile's largest */
    float *buf = malloc(frame * sizeof *buf);
    rc = mono && buf ? SOUK_OK : SOUK_ENOMEM;
    while (rc == SOUK_OK && got < max) {
        int r = OPUS->op_read_float_stereo(of, buf, frame);
        if (r == OP_HOLE)
            continue;           /* a gap in the stream: go on with what follows */
        if (r < 0) {
            snprintf(err, errlen, "damaged Ogg/Opus data (opusfile error %d)", r);
            rc = SOUK_EINVAL;
        }
        if (r <= 0)
            break;
        if (got + (size_t)r > cap) {
            while (got + (size_t)r > cap)
                cap *= 2;
            float *m = realloc(mono, cap * sizeof *m);
            if (!m) {
                rc = SOUK_ENOMEM;
                break;
            }
            mono = m;
        }
        for (int i = 0; i < r; i++)
            mono[got++] = (buf[2 * i] + buf[2 * i + 1]) * 0.5f;
    }
    OPUS->op_free(of);
    free(buf);
    size_t out_cap = got / 3 + 64, done = 0;
    int16_t *out = rc == SOUK_OK ? malloc(out_cap * sizeof *out) : NULL;
    if (rc == SOUK_OK && !out)
        rc = SOUK_ENOMEM;
    if (rc == SOUK_OK && got) {
        soxr_io_spec_t io = SOXR->soxr_io_spec(SOXR_FLOAT32_I, SOXR_INT16_I);
        soxr_quality_spec_t q = SOXR->soxr_quality_spec(SOXR_MQ, 0);
        soxr_error_t e = SOXR->soxr_oneshot(48000, STT_RATE, 1, mono, got, NULL, out, out_cap,
                                            &done, &io, &q, NULL);
        if (e) {
            snprintf(err, errlen, "resampling failed: %s", e);
            rc = SOUK_EIO;
        }
    }
    free(mono);
    if (rc != SOUK_OK) {
        free(out);
        return rc;
    }
    *pcm = out;
    *n = done;
    return SOUK_OK;
}

/* ---- pocketsphinx -------------------------------------------------------- */

/* One decode of pcm with the given model; *text and *confidence on success. */
static int s_decode(const char *model_dir, const char *lm, const char *dict, const int16_t *pcm,
                    size_t n, char **text, double *confidence, char *err, size_t errlen)
{
    char hmm[512];
    snprintf(hmm, sizeof hmm, "%s/en-us", model_dir);
    cmd_ln_t *cfg = PS->cmd_ln_init(NULL, PS->ps_args(), TRUE, "-hmm", hmm, "-lm", lm, "-dict",
                                    dict, "-logfn", "/dev/null", NULL);
    ps_decoder_t *ps = cfg ? PS->ps_init(cfg) : NULL;
    if (!ps) {
        snprintf(err, errlen, "pocketsphinx could not load the model %s", lm);
        if (cfg)
            PS->cmd_ln_free_r(cfg);
        return SOUK_EUNAVAIL;
    }
    int rc = PS->ps_start_utt(ps) < 0 ? SOUK_EIO : SOUK_OK;
    /* the whole note at once (full_utt): the cepstral mean is then the
     * utterance's own, not live mode's running guess from a default, which
     * on a note of a few seconds took the word error rate of the test
     * phrases from 2.5% to 32% */
    if (rc == SOUK_OK && PS->ps_process_raw(ps, pcm, n, FALSE, TRUE) < 0)
        rc = SOUK_EIO;
    if (rc == SOUK_OK && PS->ps_end_utt(ps) < 0)
        rc = SOUK_EIO;
    if (rc == SOUK_OK) {
        int32 score = 0;
        const char *hyp = PS->ps_get_hyp(ps, &score);
        *text = strdup(hyp ? hyp : "");
        *confidence = hyp && *hyp ? PS->logmath_exp(PS->ps_get_logmath(ps), PS->ps_get_prob(ps)) : 0;
        if (!*text)
            rc = SOUK_ENOMEM;
    } else {
        snprintf(err, errlen, "pocketsphinx failed to decode");
    }
    PS->ps_free(ps);
    PS->cmd_ln_free_r(cfg);
    return rc;
}

static bool s_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int stt_sphinx_transcribe(const stt_sphinx_t *opt, const int16_t *pcm, size_t n,
                          stt_result_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = stt_load(err, errlen);
    if (rc != SOUK_OK)
        return rc;
    const char *model_dir = opt->model_dir ? opt->model_dir : STT_DEFAULT_MODEL_DIR;
    double min = opt->fallback_confidence > 0 ? opt->fallback_confidence
                                              : STT_FALLBACK_CONFIDENCE;
    char lm[512], dict[512];
    out->audio_ms = (int64_t)n * 1000 / STT_RATE;
    bool shop = false;
    if (opt->shop_dir) {
        snprintf(lm, sizeof lm, "%s/" STT_SHOP_LM, opt->shop_dir);
        snprintf(dict, sizeof dict, "%s/" STT_SHOP_DICT, opt->shop_dir);
        shop = s_file(lm) && s_file(dict);
    }
    if (shop) {
        rc = s_decode(model_dir, lm, dict, pcm, n, &out->text, &out->confidence, err, errlen);
        out->model = "shop";
        if (rc != SOUK_OK || out->confidence >= min)
            return rc;
    }
    /* the shop's model is not sure (or there is none): what does the
     * generic one make of it? The surer answer is kept. */
    char *text = NULL;
    double conf = 0;
    snprintf(lm, sizeof lm, "%s/en-us.lm.bin", model_dir);
    snprintf(dict, sizeof dict, "%s/cmudict-en-us.dict", model_dir);
    rc = s_decode(model_dir, lm, dict, pcm, n, &text, &conf, err, errlen);
    if (rc != SOUK_OK) {
        if (shop)
            return SOUK_OK;     /* the shop model's answer stands */
        return rc;
    }
    if (!shop || (*text && conf >= out->confidence * STT_FALLBACK_RATIO)) {
        free(out->text);
        out->text = text;
        out->confidence = conf;
        out->model = "generic";
    } else {
        free(text);
    }
    return SOUK_OK;
}
