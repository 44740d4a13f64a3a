/* souk/stt.h: speech to text for voice notes.
 *
 * Two engines (SOUK_STT):
 *   pocketsphinx  offline. The Ogg/Opus note is decoded with libopusfile
 *                 (always 48 kHz), mixed to mono and resampled to 16 kHz
 *                 with libsoxr, then decoded with Debian's pocketsphinx
 *                 (5prealpha) and its en-us acoustic model — first with the
 *                 shop's own language model (a bigram model over the
 *                 catalogue's words and the agent's utterances, written by
 *                 `souk import` into <data>/stt/), and when that one
 *                 cannot explain the audio (a very low posterior), again
 *                 with the generic en-us model, whose answer is taken if
 *                 it is much surer. The generic model alone
 *                 turns "show me running shoes" into "so we running shoes".
 *   openai        POST multipart to <base>/audio/transcriptions, model
 *                 whisper-1, language detected by the service.
 * The libraries are loaded on first use (dlopen), like libcurl: only a
 * session that receives a voice note pays for them.
 *
 * Every call blocks (seconds for a long note): the session runs them on a
 * worker thread and keeps heartbeating. No function here keeps global
 * state besides the loaded libraries, so calls from different threads are
 * safe. */
#ifndef SOUK_STT_H
#define SOUK_STT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STT_RATE 16000
/* A voice note is decoded up to this long; the rest is ignored. */
#define STT_MAX_SECONDS 300
/* Below this confidence (0..1) the reply says what was heard. */
#define STT_MIN_CONFIDENCE 0.2
/* Below this one the shop model is taken not to explain the audio: the
 * generic model decodes it too, and wins when its posterior is at least
 * STT_FALLBACK_RATIO times the shop model's (posteriors of two models are
 * not on one scale: the shop model's are lower for the same clear speech,
 * measured on the test phrases). */
#define STT_FALLBACK_CONFIDENCE 0.01
#define STT_FALLBACK_RATIO 10.0
#define STT_DEFAULT_MODEL_DIR "/usr/share/pocketsphinx/model/en-us"
/* Files of the shop's model under <data>/stt/. */
#define STT_SHOP_LM "shop.lm"
#define STT_SHOP_DICT "shop.dict"

typedef struct {
    char *text;                 /* what was heard, lower case; "" for nothing */
    double confidence;          /* 0..1 (pocketsphinx's posterior; 1 for openai) */
    const char *model;          /* "shop", "generic" or "openai" (static) */
    char *language;             /* openai: the detected language; else NULL */
    int64_t audio_ms;           /* length of the audio decoded */
} stt_result_t;
void stt_result_clear(stt_result_t *r);

/* Loads libpocketsphinx, libsphinxbase, libopusfile and libsoxr once per
 * process. SOUK_OK or SOUK_EUNAVAIL with the missing library in err. */
int stt_load(char *err, size_t errlen);

/* Decodes an Ogg/Opus file (in memory) to 16 kHz mono signed 16-bit PCM,
 * at most STT_MAX_SECONDS. *pcm is malloc'd (caller frees), *n samples.
 * SOUK_EINVAL for data that is not Ogg/Opus; SOUK_EUNAVAIL; SOUK_ENOMEM. */
int stt_decode_ogg(const void *data, size_t len, int16_t **pcm, size_t *n, char *err,
                   size_t errlen);

typedef struct {
    const char *shop_dir;       /* folder with shop.lm + shop.dict; NULL or absent: generic only */
    const char *model_dir;      /* NULL: STT_DEFAULT_MODEL_DIR */
    double fallback_confidence; /* 0: STT_FALLBACK_CONFIDENCE; > 1: always compare */
} stt_sphinx_t;

/* Transcribes 16 kHz mono PCM with pocketsphinx (see the top). SOUK_OK
 * with *out (caller clears); SOUK_EUNAVAIL when a library or the acoustic
 * model is missing; SOUK_EIO when the decoder fails. */
int stt_sphinx_transcribe(const stt_sphinx_t *opt, const int16_t *pcm, size_t n,
                          stt_result_t *out, char *err, size_t errlen);

typedef struct {
    const char *base_url;       /* "https://api.openai.com/v1" (no trailing /audio…) */
    const char *api_key;        /* secret: never logged */
    const void *audio;
    size_t len;
    const char *content_type;   /* "audio/ogg" */
    const char *filename;       /* "voice.ogg": the service guesses the format from it */
    long timeout_ms;            /* 0: 60000 */
} stt_openai_t;

/* Transcribes through the OpenAI audio API (whisper-1, response_format
 * verbose_json for the detected language). SOUK_OK with *out; SOUK_EIO for
 * an HTTP error or a malformed answer; SOUK_ETIMEDOUT; SOUK_EUNAVAIL. */
int stt_openai_transcribe(const stt_openai_t *opt, stt_result_t *out, char *err,
                          size_t errlen);

/* ---- the shop's language model (stt_lm.c) ------------------------------- */

typedef struct stt_lm stt_lm_t;

stt_lm_t *stt_lm_new(void);
/* Adds one sentence of training text (any case and punctuation). Returns
 * SOUK_OK or SOUK_ENOMEM. */
int stt_lm_add(stt_lm_t *self, const char *text);
/* Adds the TEXT of each INTENT<TAB>TEXT line of a TSV document (lines
 * starting with # are comments). SOUK_OK or SOUK_ENOMEM. */
int stt_lm_add_tsv(stt_lm_t *self, const char *tsv);
/* Writes <dir>/shop.lm (ARPA bigram, absolute discounting with back-off)
 * and <dir>/shop.dict (the pronunciations of its words from
 * <model_dir>/cmudict-en-us.dict; words it does not know are left out of
 * both), creating dir. *words (may be NULL) gets the vocabulary size.
 * SOUK_OK; SOUK_EUNAVAIL without the dictionary; SOUK_EIO. */
int stt_lm_write(stt_lm_t *self, const char *dir, const char *model_dir, size_t *words,
                 char *err, size_t errlen);
void stt_lm_destroy(stt_lm_t **self_p);

/* The agent's utterance set (data/nlu/utterances.tsv, built into the
 * binary): INTENT<TAB>TEXT lines and # comments. */
const char *stt_utterances(void);

/* Word error rate of hyp against ref (words compared case-insensitively,
 * punctuation ignored): (substitutions + deletions + insertions) / words of
 * ref; 0 for two empty texts. *edits and *words (may be NULL) get the parts. */
double stt_wer(const char *ref, const char *hyp, size_t *edits, size_t *words);

#endif
