/* A whole file read into memory, for the tests and benchmarks that compare
 * or parse files a run wrote (models, reports, voice notes, catalogues). */
#ifndef SOUK_TEST_SLURP_H
#define SOUK_TEST_SLURP_H

#include <stddef.h>

/* The bytes of path, read to its end (so /proc files, which give no size,
 * work too), NUL-terminated (the NUL not counted in *len; len may be NULL),
 * caller frees; NULL when it cannot be opened or read (*len untouched). */
char *slurp(const char *path, size_t *len);

#endif
