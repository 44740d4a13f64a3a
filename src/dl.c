/* Libraries loaded on first use; see src/dl.h. */
#include "dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"

static void s_load(souk_dl_t *lib)
{
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(lib->error, sizeof lib->error, "%s (Debian package %s)", dlerror(),
                 lib->package);
        return;
    }
    /* POSIX dlsym hands back functions as void *: the table is that many
     * pointers, stored as such */
    void **slots = lib->table;
    for (size_t i = 0; i < lib->count; i++) {
        slots[i] = dlsym(h, lib->names[i]);
        if (!slots[i]) {
            snprintf(lib->error, sizeof lib->error, "%s: no symbol %s (%s too old?)",
                     lib->soname, lib->names[i], lib->package);
            memset(slots, 0, lib->count * sizeof *slots);
            dlclose(h);
            return;
        }
    }
    lib->loaded = true;
}

int souk_dl_load(souk_dl_t *lib, char *err, size_t errlen)
{
    pthread_mutex_lock(&lib->lock);
    if (!lib->tried) {
        s_load(lib);
        lib->tried = true;
    }
    pthread_mutex_unlock(&lib->lock);
    if (lib->loaded)
        return SOUK_OK;
    if (err && errlen)
        snprintf(err, errlen, "%s", lib->error);
    return SOUK_EUNAVAIL;
}

void *souk_dl_table(souk_dl_t *lib)
{
    if (souk_dl_load(lib, NULL, 0) != SOUK_OK) {
        fprintf(stderr, "souk: %s used without loading it: %s\n", lib->soname, lib->error);
        abort();
    }
    return lib->table;
}
