/* A bounded map of recently seen keys: a ring of entries in insertion order
 * (the oldest is forgotten when the ring is full) indexed by an
 * open-addressing hash table with linear probing. Fixed memory, no
 * allocation after creation: the gateway remembers MessageSids and verdicts
 * in it at webhook rate. */
#include "gateway.h"

#include "souk/error.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char key[GW_SID_MAX + 1];
    int value;
    uint32_t hash;
} entry_t;

struct gw_recent {
    entry_t *ring;
    size_t cap, count, oldest; /* ring[oldest] is evicted next when full */
    uint32_t *slots;           /* ring index + 1; 0 is an empty slot */
    size_t mask;
};

static uint32_t s_hash(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

gw_recent_t *gw_recent_new(size_t cap)
{
    gw_recent_t *self = calloc(1, sizeof *self);
    if (!self || cap == 0)
        goto fail;
    size_t nslots = 16;
    while (nslots < 2 * cap)
        nslots *= 2;
    self->cap = cap;
    self->mask = nslots - 1;
    self->ring = calloc(cap, sizeof *self->ring);
    self->slots = calloc(nslots, sizeof *self->slots);
    if (!self->ring || !self->slots)
        goto fail;
    return self;
fail:
    gw_recent_destroy(&self);
    return NULL;
}

void gw_recent_destroy(gw_recent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->ring);
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

/* Slot holding key, or the empty slot where it would go. */
static size_t s_find(const gw_recent_t *self, const char *key, uint32_t h)
{
    size_t i = h & self->mask;
    while (self->slots[i]) {
        const entry_t *e = &self->ring[self->slots[i] - 1];
        if (e->hash == h && strcmp(e->key, key) == 0)
            break;
        i = (i + 1) & self->mask;
    }
    return i;
}

/* Empties slot i and shifts later members of its probe run back, so every
 * key stays reachable from its home slot (no tombstones). */
static void s_remove_slot(gw_recent_t *self, size_t i)
{
    size_t j = i;
    for (;;) {
        self->slots[i] = 0;
        for (;;) {
            j = (j + 1) & self->mask;
            if (!self->slots[j])
                return;
            size_t home = self->ring[self->slots[j] - 1].hash & self->mask;
            /* j's entry may move to i only if its home is not in (i, j] */
            bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!in_range)
                break;
        }
        self->slots[i] = self->slots[j];
        i = j;
    }
}

int gw_recent_get(const gw_recent_t *self, const char *key)
{
    if (strlen(key) > GW_SID_MAX)
        return 0;
    size_t i = s_find(self, key, s_hash(key));
    return self->slots[i] ? self->ring[self->slots[i] - 1].value : 0;
}

int gw_recent_put(gw_recent_t *self, const char *key, int value)
{
    size_t len = strlen(key);
    if (len > GW_SID_MAX || value == 0)
        return SOUK_EINVAL;
    uint32_t h = s_hash(key);
    size_t i = s_find(self, key, h);
    if (self->slots[i]) {
        self->ring[self->slots[i] - 1].value = value;
        return SOUK_OK;
    }
    size_t at;
    if (self->count < self->cap) {
        at = self->count++;
    } else {
        at = self->oldest;
        entry_t *old = &self->ring[at];
        s_remove_slot(self, s_find(self, old->key, old->hash));
        self->oldest = (self->oldest + 1) % self->cap;
        i = s_find(self, key, h); /* the removal may have moved the run */
    }
    entry_t *e = &self->ring[at];
    memcpy(e->key, key, len + 1);
    e->value = value;
    e->hash = h;
    self->slots[i] = (uint32_t)at + 1;
    return SOUK_OK;
}

size_t gw_recent_size(const gw_recent_t *self) { return self->count; }
