/* A shared library loaded on first use, its functions resolved into a
 * table of pointers (the library's own struct of typed function pointers,
 * filled in declaration order). Used for the libraries only some actors
 * need (libcurl, libwebsockets): linking them would make every actor —
 * one per WhatsApp user — pay their loading at start and their relocations
 * in memory. The library stays loaded for the life of the process. */
#ifndef SOUK_DL_H
#define SOUK_DL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *soname;        /* "libcurl.so.4": the ABI of the headers we build with */
    const char *package;       /* Debian package that ships it, for the error */
    const char *const *names;  /* symbol names, in the table's order */
    size_t count;
    void *table;               /* count function pointers, filled on success */
    pthread_mutex_t lock;      /* PTHREAD_MUTEX_INITIALIZER */
    bool tried, loaded;
    char error[256];           /* why the load failed */
} souk_dl_t;

/* Loads lib once (later calls return the first result). SOUK_OK, or
 * SOUK_EUNAVAIL with a sentence naming the library in err (may be NULL). */
int souk_dl_load(souk_dl_t *lib, char *err, size_t errlen);

/* The filled table; aborts, saying why, when lib could not be loaded —
 * a caller that skipped souk_dl_load is a bug, not a condition. */
void *souk_dl_table(souk_dl_t *lib);

#endif
