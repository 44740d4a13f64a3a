/* Starts and stops dynalite for the tests (see dynalite.h). dynalite is a
 * real DynamoDB implementation (on LevelDB in memory), not a fake: it checks
 * keys, conditions, expressions and indexes as DynamoDB does; it does not
 * check SigV4 signatures (test_dynamo_sign does that). */
#include "dynalite.h"
#include "souk/error.h"
#include "souk/store.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SOUK_SRC_DIR
#define SOUK_SRC_DIR "."
#endif

static pid_t s_pid;
static int s_port;
static char s_path[128];        /* --path when persistent */
static char s_bin[1024];
static int s_tables;

const char *dynalite_backend(void)
{
    const char *b = getenv("SOUK_TEST_STORE");
    return b && *b ? b : "sqlite";
}

static bool s_dynamo(void)
{
    return strcmp(dynalite_backend(), "dynamodb") == 0;
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *) &a, sizeof a) == 0
        && getsockname(fd, (struct sockaddr *) &a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts node on port; true once it says it listens. */
static bool s_spawn(int port)
{
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    int out[2];
    if (pipe(out) != 0)
        return false;
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a test killed by its time-out leaves no dynalite */
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        if (s_path[0])
            execlp("node", "node", s_bin, "--host", "127.0.0.1", "--port", port_s, "--createTableMs",
                   "0", "--deleteTableMs", "0", "--updateTableMs", "0", "--path", s_path,
                   (char *) NULL);
        else
            execlp("node", "node", s_bin, "--host", "127.0.0.1", "--port", port_s, "--createTableMs",
                   "0", "--deleteTableMs", "0", "--updateTableMs", "0", (char *) NULL);
        _exit(127);
    }
    close(out[1]);
    /* ready when it says it listens; EOF: it died (the port was taken) */
    char buf[256];
    size_t len = 0;
    ssize_t n;
    bool ready = false;
    while (!ready && len < sizeof buf - 1 && (n = read(out[0], buf + len, sizeof buf - 1 - len)) > 0) {
        len += (size_t) n;
        buf[len] = '\0';
        ready = strstr(buf, "listening") != NULL;
    }
    close(out[0]);
    if (!ready) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return false;
    }
    s_pid = pid;
    s_port = port;
    return true;
}

static int s_start(bool persistent)
{
    if (!s_dynamo() || s_pid)
        return 0;
    const char *src = getenv("SOUK_SRC");
    snprintf(s_bin, sizeof s_bin, "%s/tests/node_modules/dynalite/cli.js",
             src && *src ? src : SOUK_SRC_DIR);
    if (system("node --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "dynalite: no node.js here: the DynamoDB run is skipped\n");
        return 1;
    }
    if (access(s_bin, R_OK) != 0) {
        fprintf(stderr, "dynalite: %s missing: run scripts/setup (npm ci in tests/)\n", s_bin);
        return -1;
    }
    if (persistent) {
        const char *tmp = getenv("TMPDIR");
        snprintf(s_path, sizeof s_path, "%s/souk-dynalite-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(s_path))
            return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = s_free_port();
        if (port < 0 || !s_spawn(port))
            continue;
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
        setenv("DYNAMODB_ENDPOINT", url, 1);
        setenv("SOUK_STORE", "dynamodb", 1);
        setenv("AWS_ACCESS_KEY_ID", "test", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "test", 1);
        setenv("AWS_REGION", "us-east-1", 1);
        return 0;
    }
    fprintf(stderr, "dynalite: did not start\n");
    return -1;
}

int dynalite_start(void)
{
    return s_start(false);
}

int dynalite_start_persistent(void)
{
    return s_start(true);
}

void dynalite_kill(void)
{
    if (!s_pid)
        return;
    kill(s_pid, SIGKILL);
    waitpid(s_pid, NULL, 0);
    s_pid = 0;
}

int dynalite_restart(void)
{
    for (int attempt = 0; attempt < 20; attempt++)
        if (s_spawn(s_port))
            return 0;
    return -1;
}

static int s_unlink(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb, (void) flag, (void) ftw;
    return remove(path);
}

void dynalite_stop(void)
{
    if (s_pid) {
        kill(s_pid, SIGTERM);
        waitpid(s_pid, NULL, 0);
    }
    s_pid = 0;
    if (s_path[0])
        nftw(s_path, s_unlink, 8, FTW_DEPTH | FTW_PHYS);
    s_path[0] = '\0';
}

int dynalite_fresh_table(void)
{
    if (!s_dynamo())
        return 0;
    char prefix[64], err[512] = "";
    snprintf(prefix, sizeof prefix, "t%d_%d_", (int) getpid(), ++s_tables);
    setenv("SOUK_TABLE_PREFIX", prefix, 1);
    int rc = store_create("dynamodb", "/nonexistent", err, sizeof err);
    if (rc != SOUK_OK) {
        fprintf(stderr, "dynalite: store_create: %s: %s\n", souk_errname(rc), err);
        return -1;
    }
    return 0;
}
