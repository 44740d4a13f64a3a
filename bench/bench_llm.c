/* LLM agent benchmarks (docs/BENCHMARKS.md, issue 5).
 *
 *   bench_llm saved TSV
 *       LLM calls the hybrid classifier saves on the built-in labelled set:
 *       the share of messages the built-in classifier is sure of (no model
 *       call), over every line and over the held-out 20%, and how often the
 *       built-in intent is right when it is sure.
 *   bench_llm overhead [TURNS]
 *       The agent loop's own cost per turn, the model's time excluded: a
 *       three-step turn (search_products -> place_order -> final text)
 *       against tests/fakes/openai_fake.py (SOUK_SRC), the tools an instant
 *       stand-in. Reported: the CPU time souk spends per turn (the fake runs
 *       in another process, so its time is not in it) and the wall time
 *       minus the time the HTTP calls took. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/openai_fake.h"
#include "bench.h"
#include "souk/actor.h"
#include "souk/error.h"
#include "souk/llm.h"
#include "souk/nlu.h"

static double s_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- saved ------------------------------------------------------------------------ */

static int s_saved(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 1;
    }
    nlu_eval_t all, held;
    nlu_eval_init(&all, nlu_clarify_threshold());
    nlu_eval_init(&held, nlu_clarify_threshold());
    char line[2048];
    int saved = 0, n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (line[0] == '#' || !tab)
            continue;
        *tab = '\0';
        nlu_intent_t truth;
        nlu_result_t r;
        if (nlu_intent_parse(line, &truth) != SOUK_OK || nlu_classify(tab + 1, &r) != SOUK_OK)
            continue;
        n++;
        saved += llm_classify_confident(tab + 1);
        nlu_eval_add(&all, truth, r.intent, r.confidence);
        if (nlu_is_heldout(tab + 1))
            nlu_eval_add(&held, truth, r.intent, r.confidence);
    }
    fclose(f);
    printf("threshold %.3f\n", nlu_clarify_threshold());
    printf("all lines:  %d messages, %d model calls saved (%.1f%%), built-in right on %.1f%% "
           "of those\n", n, saved, 100.0 * saved / n, 100 * nlu_eval_confident_accuracy(&all));
    printf("held-out:   %d messages, %.1f%% saved, built-in right on %.1f%% of those "
           "(overall accuracy %.1f%%)\n", held.n, 100 * nlu_eval_coverage(&held),
           100 * nlu_eval_confident_accuracy(&held), 100 * nlu_eval_accuracy(&held));
    return 0;
}

/* ---- overhead ------------------------------------------------------------------- */

static int s_tool(void *arg, const char *tool, const char *args_json, const char *idem_key,
                  char **result_json, char **error)
{
    (void)arg; (void)args_json; (void)idem_key;
    *error = NULL;
    if (strcmp(tool, "search_products") == 0)
        *result_json = strdup("[{\"product_id\":\"BEA-ESS-ESS-001\",\"name\":\"Essence Mascara "
                              "Lash Princess\",\"price\":9.99,\"currency\":\"USD\",\"stock\":99,"
                              "\"score\":0.9},{\"product_id\":\"BEA-CHI-LIP-004\",\"name\":\"Red "
                              "Lipstick\",\"price\":12.99,\"currency\":\"USD\",\"stock\":91,"
                              "\"score\":0.5}]");
    else
        *result_json = strdup("{\"order_id\":\"SK-7K3Q9\",\"status\":\"pending\",\"total\":19.98,"
                              "\"currency\":\"USD\",\"items\":[{\"product_id\":\"BEA-ESS-ESS-001\","
                              "\"quantity\":2,\"unit_price\":9.99}]}");
    return SOUK_OK;
}

static const char SCRIPT[] =
    "{\"rules\":["
    "{\"kind\":\"chat\",\"contains\":\"#\",\"tool_calls\":[{\"name\":\"search_products\",\"arguments\":{\"query\":\"mascara\"}}]},"
    "{\"kind\":\"chat\",\"contains\":\"#\",\"tool_calls\":[{\"name\":\"place_order\",\"arguments\":{\"items\":[{\"product_id\":\"BEA-ESS-ESS-001\",\"quantity\":2}]}}]},"
    "{\"kind\":\"chat\",\"contains\":\"#\",\"content\":\"Done! Your order {tool.order_id} comes to {tool.total} {tool.currency}.\"}]}";

static int s_overhead(int turns)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    openai_fake_t fake;
    if (openai_fake_start(&fake) != 0) {
        fprintf(stderr, "bench_llm: cannot start the fake (set SOUK_SRC)\n");
        return 1;
    }
    llm_options_t o = { .base_url = fake.base_url, .api_key = FAKE_KEY, .model = "gpt-4o-mini",
                        .classify = LLM_CLASSIFY_NEVER, .timeout_ms = 5000, .max_steps = 6 };
    llm_t *llm = NULL;
    agent_t *fb = agent_new(NULL);
    char err[256];
    if (llm_new(&o, &llm, err, sizeof err) != SOUK_OK || !fb) {
        fprintf(stderr, "bench_llm: %s\n", err);
        return 1;
    }
    llm_history_t hist[6] = {
        { true, "hi" }, { false, "Hi! How can I help?" }, { true, "do you have mascara?" },
        { false, "Yes: 1. *Essence Mascara Lash Princess* $9.99" }, { true, "nice" },
        { false, "Anything else?" },
    };
    double *cpu = calloc((size_t)turns, sizeof *cpu), *wall = calloc((size_t)turns, sizeof *wall);
    int done = 0;
    for (int i = 0; i < turns + 5; i++) {
        openai_fake_script(&fake, SCRIPT);
        char turn_id[32];
        snprintf(turn_id, sizeof turn_id, "SM%d", i);
        llm_input_t in = { .in = { .waid = "15550100000", .text = "# 2 mascaras please",
                                   .turn_id = turn_id, .call_tool = s_tool,
                                   .state_json = "{\"v\":1,\"shown\":[]}" },
                           .history = hist, .n_history = 6 };
        agent_output_t out;
        llm_turn_info_t info;
        double c0 = s_cpu_ms(), w0 = bench_ms();
        int rc = llm_turn(llm, fb, &in, &out, &info);
        double c1 = s_cpu_ms(), w1 = bench_ms();
        if (rc != SOUK_OK || info.fallback || info.steps != 3) {
            fprintf(stderr, "bench_llm: turn %d: rc=%d fallback=%d steps=%d\n", i, rc,
                    info.fallback, info.steps);
            return 1;
        }
        if (i >= 5) { /* warm-up: the first connection, the first allocations */
            cpu[done] = c1 - c0;
            wall[done] = (w1 - w0) - (double)info.latency_ms;
            done++;
        }
        agent_output_clear(&out);
    }
    qsort(cpu, (size_t)done, sizeof *cpu, bench_cmp_double);
    qsort(wall, (size_t)done, sizeof *wall, bench_cmp_double);
    printf("%d turns of 3 model calls and 2 tool calls each\n", done);
    printf("CPU per turn (souk's side, the model excluded): p50 %.3f ms, p99 %.3f ms\n",
           cpu[done / 2], cpu[done * 99 / 100]);
    printf("wall per turn minus the HTTP calls' time:       p50 %.3f ms, p99 %.3f ms\n",
           wall[done / 2], wall[done * 99 / 100]);
    free(cpu);
    free(wall);
    llm_destroy(&llm);
    agent_destroy(&fb);
    openai_fake_stop(&fake);
    curl_global_cleanup();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "saved") == 0)
        return s_saved(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "overhead") == 0)
        return s_overhead(argc >= 3 ? atoi(argv[2]) : 200);
    fprintf(stderr, "usage: bench_llm saved data/nlu/utterances.tsv | bench_llm overhead [TURNS]\n");
    return 2;
}
