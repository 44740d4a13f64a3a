/* Transcription real-time factor of the offline speech to text (souk/stt.h):
 * the phrases of tests/voice_phrases.txt said by espeak-ng, encoded with
 * opusenc, then for each: Ogg/Opus decode + resampling, pocketsphinx with
 * the shop's model (as a session does, generic fallback included), and
 * pocketsphinx with the generic model alone. Each step's time over the
 * audio's length is its real-time factor (below 1: faster than speech).
 *
 *   build/bench_stt [ROUNDS]     (default 5; run from the source folder:
 *                                 it runs build/souk import for the model)
 *
 * Figures in docs/BENCHMARKS.md. */
#include "bench.h"
#include "souk/error.h"
#include "souk/stt.h"
#include "../tests/slurp.h"
#include "../tests/voice_note.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PHRASES_MAX 64
#define ROUNDS_MAX 50

static double s_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1 || rounds > ROUNDS_MAX)
        rounds = 5;
    char dir[] = "/tmp/souk-bench-stt-XXXXXX", cmd[2048], shop[128];
    if (!mkdtemp(dir))
        return 1;
    snprintf(cmd, sizeof cmd, "SOUK_DATA=%s/data build/souk import data/demo/products.jsonl "
             ">/dev/null 2>&1", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_stt: run from the source folder after a build\n");
        return 1;
    }
    snprintf(shop, sizeof shop, "%s/data/stt", dir);
    FILE *f = fopen("tests/voice_phrases.txt", "r");
    if (!f)
        return 1;
    char line[256];
    size_t n = 0;
    double audio = 0, t_dec[ROUNDS_MAX], t_shop[ROUNDS_MAX], t_gen[ROUNDS_MAX];
    memset(t_dec, 0, sizeof t_dec);
    memset(t_shop, 0, sizeof t_shop);
    memset(t_gen, 0, sizeof t_gen);
    while (n < PHRASES_MAX && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!*line || *line == '#')
            continue;
        if (voice_note_say(dir, "p", line) != 0)
            return 1;
        snprintf(cmd, sizeof cmd, "%s/p.ogg", dir);
        size_t len;
        char *ogg = slurp(cmd, &len), err[256];
        for (int r = 0; ogg && r < rounds; r++) {
            int16_t *pcm;
            size_t samples;
            stt_result_t a, b;
            double t0 = bench_seconds();
            if (stt_decode_ogg(ogg, len, &pcm, &samples, err, sizeof err) != SOUK_OK)
                return 1;
            double t1 = bench_seconds();
            stt_sphinx_t with_shop = { .shop_dir = shop }, generic = { 0 };
            if (stt_sphinx_transcribe(&with_shop, pcm, samples, &a, err, sizeof err) != SOUK_OK)
                return 1;
            double t2 = bench_seconds();
            if (stt_sphinx_transcribe(&generic, pcm, samples, &b, err, sizeof err) != SOUK_OK)
                return 1;
            double t3 = bench_seconds();
            t_dec[r] += t1 - t0;
            t_shop[r] += t2 - t1;
            t_gen[r] += t3 - t2;
            if (r == 0)
                audio += (double)samples / STT_RATE;
            free(pcm);
            stt_result_clear(&a);
            stt_result_clear(&b);
        }
        free(ogg);
        n++;
    }
    fclose(f);
    double dec = s_median(t_dec, (size_t)rounds), sh = s_median(t_shop, (size_t)rounds),
           gen = s_median(t_gen, (size_t)rounds);
    printf("%zu phrases, %.1f s of audio, median of %d rounds\n", n, audio, rounds);
    printf("%-44s %8s %8s %8s\n", "step", "total s", "per note", "RTF");
    printf("%-44s %8.3f %8.3f %8.3f\n", "decode Ogg/Opus + resample to 16 kHz", dec, dec / n,
           dec / audio);
    printf("%-44s %8.3f %8.3f %8.3f\n", "pocketsphinx, shop model (+ fallback)", sh, sh / n,
           sh / audio);
    printf("%-44s %8.3f %8.3f %8.3f\n", "pocketsphinx, generic model", gen, gen / n, gen / audio);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
