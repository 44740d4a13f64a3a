/* What llm.c shares with llm_classify.c (the rest of souk uses souk/llm.h). */
#ifndef SOUK_LLM_INTERNAL_H
#define SOUK_LLM_INTERNAL_H

#include "souk/llm.h"

openai_t *llm_api(llm_t *self);
const char *llm_model(const llm_t *self);
llm_stats_t *llm_stats_mut(llm_t *self);
llm_classify_t llm_mode(const llm_t *self);
/* Counts one model call into the stats, and into info when not NULL. */
void llm_count_call(llm_t *self, const openai_call_t *c, int rc, llm_turn_info_t *info);

#endif
