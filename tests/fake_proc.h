/* A python3 fake server (a script in tests/fakes) as a child process: started
 * with its arguments, its port read from the first line of its stdout,
 * stopped with SIGTERM; and a request to its control endpoints (/_fake/...).
 * Shared by every test and benchmark that runs one of the fakes. */
#ifndef SOUK_TEST_FAKE_PROC_H
#define SOUK_TEST_FAKE_PROC_H

#include <jansson.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    int port;
} fake_proc_t;

/* Starts python3 $SOUK_SRC/tests/fakes/<script> (SOUK_SRC unset: ".") with
 * args (NULL-terminated, may be NULL). Returns 0, or -1 when python3 did not
 * start or printed no port. */
int fake_proc_start(fake_proc_t *f, const char *script, const char *const *args);
/* The same with the source tree named: src_dir/tests/fakes/<script>. */
int fake_proc_start_in(fake_proc_t *f, const char *src_dir, const char *script,
                       const char *const *args);
/* SIGTERM, then waits for it; a stopped or never started fake is left alone. */
void fake_proc_stop(fake_proc_t *f);

/* METHOD http://127.0.0.1:<port><path> with json_body (may be NULL), within
 * 10 s: the answer parsed (caller decrefs), or NULL when there was no answer,
 * its status was not 200 (every fake answers its control endpoints with 200)
 * or it was not JSON. libcurl is loaded through souk/curl.h. */
json_t *fake_proc_call(const fake_proc_t *f, const char *method, const char *path,
                       const char *json_body);
/* The same within timeout_ms, for a control request the fake holds until
 * what it waits for has come. */
json_t *fake_proc_call_ms(const fake_proc_t *f, const char *method, const char *path,
                          const char *json_body, long timeout_ms);

#endif
