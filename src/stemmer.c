/* stemmer: a thin, lazily loaded binding of libstemmer's four calls. */
#include "stemmer.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include "souk/error.h"

struct sb_stemmer;

static struct {
    struct sb_stemmer *(*create)(const char *algorithm, const char *charenc);
    void (*destroy)(struct sb_stemmer *s);
    const unsigned char *(*stem)(struct sb_stemmer *s, const unsigned char *w, int len);
    int (*length)(struct sb_stemmer *s);
    int loaded;
} s_lib;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_load(void)
{
    void *h = dlopen("libstemmer.so.0d", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libstemmer.so", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    *(void **)&s_lib.create = dlsym(h, "sb_stemmer_new");
    *(void **)&s_lib.destroy = dlsym(h, "sb_stemmer_delete");
    *(void **)&s_lib.stem = dlsym(h, "sb_stemmer_stem");
    *(void **)&s_lib.length = dlsym(h, "sb_stemmer_length");
    s_lib.loaded = s_lib.create && s_lib.destroy && s_lib.stem && s_lib.length;
}

struct stemmer_s {
    struct sb_stemmer *sb;
};

int stemmer_new(stemmer_t **out)
{
    pthread_once(&s_once, s_load);
    if (!s_lib.loaded)
        return SOUK_EUNAVAIL;
    stemmer_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    self->sb = s_lib.create("english", NULL);
    if (!self->sb) {
        free(self);
        return SOUK_ENOMEM;
    }
    *out = self;
    return SOUK_OK;
}

void stemmer_free(stemmer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_lib.destroy((*self_p)->sb);
    free(*self_p);
    *self_p = NULL;
}

const char *stemmer_stem(stemmer_t *self, const char *w, size_t len, size_t *stem_len)
{
    const unsigned char *st = s_lib.stem(self->sb, (const unsigned char *)w, (int)len);
    if (!st) {
        *stem_len = len;
        return w;
    }
    *stem_len = (size_t)s_lib.length(self->sb);
    return (const char *)st;
}
