/* Configuration, expanded from SOUK_CONFIG_VARS in include/souk/config.h. */
#include "souk/config.h"
#include "souk/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEV_TOKEN_FILE "dev-token"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SOUK_ECONFIG;
}

static const char *choices_of(const char *field)
{
#define C(f, list) if (strcmp(field, #f) == 0) return list;
    SOUK_CONFIG_CHOICES(C)
#undef C
    return "";
}

static bool in_choices(const char *value, const char *choices)
{
    size_t n = strlen(value);
    for (const char *p = choices; *p;) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

static int parse_str(const char *env, const char *v, char **out, const char *field,
                     char *err, size_t errlen)
{
    (void)env; (void)field; (void)err; (void)errlen;
    *out = strdup(v);
    return *out ? SOUK_OK : SOUK_ENOMEM;
}

static int parse_url(const char *env, const char *v, char **out, const char *field,
                     char *err, size_t errlen)
{
    if (*v && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return fail(err, errlen, "%s=%s: expected an http:// or https:// URL", env, v);
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/') /* one spelling: no trailing slash */
        n--;
    *out = strndup(v, n);
    (void)field;
    return *out ? SOUK_OK : SOUK_ENOMEM;
}

static int parse_enum(const char *env, const char *v, char **out, const char *field,
                      char *err, size_t errlen)
{
    const char *choices = choices_of(field);
    if (!in_choices(v, choices))
        return fail(err, errlen, "%s=%s: expected one of %s", env, v, choices);
    *out = strdup(v);
    return *out ? SOUK_OK : SOUK_ENOMEM;
}

static int parse_int(const char *env, const char *v, int64_t *out, int64_t lo, int64_t hi,
                     char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end != '\0')
        return fail(err, errlen, "%s=%s: expected a whole number", env, v);
    if (x < lo || x > hi)
        return fail(err, errlen, "%s=%s: out of range %lld..%lld", env, v, (long long)lo,
                    (long long)hi);
    *out = x;
    return SOUK_OK;
}

#define parse_secret parse_str
#define PARSE_str(env, v, field, lo, hi) parse_str(#env, v, &cfg->field, #field, err, errlen)
#define PARSE_secret PARSE_str
#define PARSE_url(env, v, field, lo, hi) parse_url(#env, v, &cfg->field, #field, err, errlen)
#define PARSE_enum(env, v, field, lo, hi) parse_enum(#env, v, &cfg->field, #field, err, errlen)
#define PARSE_int(env, v, field, lo, hi) parse_int(#env, v, &cfg->field, lo, hi, err, errlen)

/* SOUK_LLM unset: the model when there is a key to reach it. */
static const char *s_llm_default(void)
{
    const char *key = getenv("OPENAI_API_KEY");
    return key && *key ? "openai" : "builtin";
}

/* "local", "local:DIM" or "openai" (embed_new reads the same spelling). */
static bool s_embedder_valid(const char *v)
{
    if (strcmp(v, "local") == 0 || strcmp(v, "openai") == 0)
        return true;
    if (strncmp(v, "local:", 6) != 0)
        return false;
    char *end;
    long d = strtol(v + 6, &end, 10);
    return end != v + 6 && *end == '\0' && d >= 64 && d <= 4096;
}

/* Exports NAME=value lines of `file` that the environment does not set. */
static int load_file(const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return fail(err, errlen, "--config %s: %s", file, strerror(errno));
    char line[4096];
    int lineno = 0, rc = SOUK_OK;
    while (rc == SOUK_OK && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        p[strcspn(p, "\r\n")] = '\0';
        if (*p == '\0' || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (!eq || eq == p) {
            rc = fail(err, errlen, "%s:%d: expected NAME=value", file, lineno);
            break;
        }
        *eq = '\0';
        char *val = eq + 1;
        size_t n = strlen(val);
        if (n >= 2 && (val[0] == '"' || val[0] == '\'') && val[n - 1] == val[0]) {
            val[n - 1] = '\0';
            val++;
        }
        bool known = false;
#define V(env, kind, field, def, lo, hi, help) known = known || strcmp(p, #env) == 0;
        SOUK_CONFIG_VARS(V)
#undef V
        if (!known && strcmp(p, "PORT") != 0 && strncmp(p, "SOUK_", 5) == 0)
            rc = fail(err, errlen, "%s:%d: unknown variable %s", file, lineno, p);
        else
            setenv(p, val, 0);
    }
    fclose(f);
    return rc;
}

/* The store folder defaults to the data folder; a node id (given, or
 * hostname:port on DynamoDB, which is shared by nature) means several nodes
 * may serve one user, so sessions take leases. */
static int s_derive_nodes(souk_config_t *cfg, char *err, size_t errlen)
{
    if (!*cfg->store_dir) {
        free(cfg->store_dir);
        if (!(cfg->store_dir = strdup(cfg->data_dir)))
            return SOUK_ENOMEM;
    }
    if (!*cfg->node_id && strcmp(cfg->store, "dynamodb") == 0) {
        char host[256] = "node";
        gethostname(host, sizeof host - 1);
        free(cfg->node_id);
        if (asprintf(&cfg->node_id, "%s:%lld", host, (long long)cfg->port) < 0) {
            cfg->node_id = NULL;
            return SOUK_ENOMEM;
        }
    }
    if (strlen(cfg->node_id) > 128)
        return fail(err, errlen, "SOUK_NODE_ID: longer than 128 characters");
    cfg->multi_node = *cfg->node_id != '\0';
    return SOUK_OK;
}

int souk_config_load(souk_config_t *cfg, const char *file, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (file && load_file(file, err, errlen) != SOUK_OK)
        return SOUK_ECONFIG;
    int rc = SOUK_OK;
    const char *v;
#define V(env, kind, field, def, lo, hi, help)                               \
    if (rc == SOUK_OK) {                                                     \
        v = getenv(#env);                                                    \
        if (!v && strcmp(#env, "SOUK_PORT") == 0)                            \
            v = getenv("PORT");                                              \
        if (!v && strcmp(#env, "SOUK_LLM") == 0)                             \
            v = s_llm_default();                                             \
        rc = PARSE_##kind(env, v ? v : def, field, lo, hi);                  \
    }
    SOUK_CONFIG_VARS(V)
#undef V
    if (rc == SOUK_OK && !*cfg->public_url) {
        free(cfg->public_url);
        if (asprintf(&cfg->public_url, "http://localhost:%lld", (long long)cfg->port) < 0)
            cfg->public_url = NULL, rc = SOUK_ENOMEM;
    }
    if (rc == SOUK_OK && strcmp(cfg->vector, "pinecone") == 0 &&
        (!*cfg->pinecone_index_host || !*cfg->pinecone_api_key))
        rc = fail(err, errlen, "SOUK_VECTOR=pinecone: PINECONE_INDEX_HOST and PINECONE_API_KEY "
                               "must be set");
    if (rc == SOUK_OK && !s_embedder_valid(cfg->embedder))
        rc = fail(err, errlen, "SOUK_EMBEDDER=%s: expected local, local:DIM (64..4096) or openai",
                  cfg->embedder);
    if (rc == SOUK_OK && !*cfg->data_dir)
        rc = fail(err, errlen, "SOUK_DATA: must not be empty");
    if (rc == SOUK_OK) {
        int n = snprintf(cfg->run_dir, sizeof cfg->run_dir, "%s/run", cfg->data_dir);
        /* ipc endpoints live under run/ and a socket path holds 107 bytes */
        if (n < 0 || n >= 80)
            rc = fail(err, errlen, "SOUK_DATA=%s: too long for ipc socket paths (keep it under 70 characters)",
                      cfg->data_dir);
    }
    if (rc == SOUK_OK)
        rc = s_derive_nodes(cfg, err, errlen);
    if (rc != SOUK_OK) {
        souk_config_clear(cfg);
        return rc == SOUK_ENOMEM ? rc : SOUK_ECONFIG;
    }
    return SOUK_OK;
}

static int mkdir_p(const char *path)
{
    char tmp[512];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

/* Reads the development token, creating it (random, 0600) on first use.
 * O_EXCL makes two processes starting at once agree on one token. */
static int dev_token(const char *data_dir, char out[65], char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof path, "%s/" DEV_TOKEN_FILE, data_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        unsigned char raw[16];
        if (getrandom(raw, sizeof raw, 0) != sizeof raw) {
            close(fd);
            unlink(path);
            return fail(err, errlen, "cannot generate a development token");
        }
        for (size_t i = 0; i < sizeof raw; i++)
            sprintf(out + 2 * i, "%02x", raw[i]);
        bool ok = write(fd, out, 32) == 32 && write(fd, "\n", 1) == 1;
        close(fd);
        if (!ok)
            return fail(err, errlen, "%s: cannot write the development token", path);
        return SOUK_OK;
    }
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    bool ok = fgets(out, 65, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    if (!ok || strlen(out) < 16)
        return fail(err, errlen, "%s: empty or short development token", path);
    return SOUK_OK;
}

int souk_config_prepare_data(souk_config_t *cfg, char *err, size_t errlen)
{
    if (mkdir_p(cfg->data_dir) < 0)
        return fail(err, errlen, "SOUK_DATA=%s: cannot create: %s", cfg->data_dir, strerror(errno));
    if (mkdir_p(cfg->run_dir) < 0)
        return fail(err, errlen, "SOUK_DATA=%s: cannot create run/: %s", cfg->data_dir,
                    strerror(errno));
    if (*cfg->twilio_auth_token)
        return SOUK_OK;
    char token[65];
    int rc = dev_token(cfg->data_dir, token, err, errlen);
    if (rc != SOUK_OK)
        return rc;
    free(cfg->twilio_auth_token);
    cfg->twilio_auth_token = strdup(token);
    if (!cfg->twilio_auth_token)
        return SOUK_ENOMEM;
    cfg->token_generated = true;
    setenv("TWILIO_AUTH_TOKEN", token, 1);
    return SOUK_OK;
}

void souk_config_clear(souk_config_t *cfg)
{
#define FREE_str(field) free(cfg->field);
#define FREE_secret FREE_str
#define FREE_url FREE_str
#define FREE_enum FREE_str
#define FREE_int(field)
#define V(env, kind, field, def, lo, hi, help) FREE_##kind(field)
    SOUK_CONFIG_VARS(V)
#undef V
    memset(cfg, 0, sizeof *cfg);
}

/* A URL's credentials (https://user:password@host/) are a secret too. */
static void print_url(FILE *f, const char *env, const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : NULL;
    const char *at = host ? strchr(host, '@') : NULL;
    if (at && at < host + strcspn(host, "/?#"))
        fprintf(f, "%s=%.*s(credentials hidden)%s\n", env, (int)(host - url), url, at);
    else
        fprintf(f, "%s=%s\n", env, url);
}

void souk_config_print(const souk_config_t *cfg, void *out)
{
    FILE *f = out;
#define PRINT_str(env, field) fprintf(f, "%s=%s\n", #env, cfg->field);
#define PRINT_url(env, field) print_url(f, #env, cfg->field);
#define PRINT_enum PRINT_str
#define PRINT_secret(env, field)                                             \
    fprintf(f, "%s=%s\n", #env, *cfg->field ? (cfg->token_generated ? "(development token)" : "(set)") : "(unset)");
#define PRINT_int(env, field) fprintf(f, "%s=%lld\n", #env, (long long)cfg->field);
#define V(env, kind, field, def, lo, hi, help) PRINT_##kind(env, field)
    SOUK_CONFIG_VARS(V)
#undef V
}

void souk_config_print_table(void *out)
{
    FILE *f = out;
    fprintf(f, "| Variable | Default | Meaning |\n|---|---|---|\n");
#define V(env, kind, field, def, lo, hi, help)                               \
    fprintf(f, "| `%s` | %s%s%s | %s |\n", #env, *def ? "`" : "", *def ? def : "(unset)", *def ? "`" : "", help);
    SOUK_CONFIG_VARS(V)
#undef V
}
