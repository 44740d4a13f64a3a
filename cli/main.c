/* `souk`: one binary for the CLI, the supervisor and every actor role.
 *
 * Every command loads the same configuration (environment, optionally
 * `--config FILE`), so a client command finds the daemon's data folder and
 * sockets exactly where `souk serve` put them. */
#include "cli.h"
#include "souk/error.h"
#include "souk/log.h"
#include "souk/roles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*command_fn)(souk_config_t *cfg, int argc, char **argv);

static int cmd_serve(souk_config_t *cfg, int argc, char **argv);
static int cmd_actor(souk_config_t *cfg, int argc, char **argv);
static int cmd_config(souk_config_t *cfg, int argc, char **argv);

static const struct {
    const char *name;
    command_fn fn;
    const char *args; /* NULL: internal, not listed */
    const char *what;
} s_commands[] = {
    { "serve", cmd_serve, "serve [--config FILE]",
      "run souk in the foreground" },
    { "status", cli_status, "status [--json]",
      "every actor: role, pid, state, uptime, restarts" },
    { "events", cli_events, "events",
      "lifecycle events as JSON lines (until interrupted)" },
    { "chat", cli_chat, "chat [--from +15551234567] [--name Ana]",
      "talk to souk as a WhatsApp user" },
    { "db", cli_db, "db create",
      "create the store's tables and indexes (DynamoDB) or database" },
    { "import", cli_import, "import FILE [--dry-run] [--if-empty] [--format csv|json|jsonl]",
      "load products, all or nothing" },
    { "products", cli_products, "products [--json] [--count]",
      "the catalogue, by SKU" },
    { "orders", cli_orders, "orders [--json]",
      "every order: id, user, items, total, status, created" },
    { "tickets", cli_tickets, "tickets [--json]",
      "every support ticket" },
    { "search", cli_search, "search QUERY [--limit N] [--json]",
      "ranked products with SKU and score" },
    { "understand", cli_understand, "understand TEXT [--json]",
      "the built-in agent's intent, confidence and slots" },
    { "config", cmd_config, "config [--table]",
      "the effective configuration, secrets hidden" },
    { "actor", cmd_actor, NULL, NULL }, /* internal: what the supervisor execs */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: souk [--config FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (s_commands[i].args)
            fprintf(f, "  souk %-44s %s\n", s_commands[i].args, s_commands[i].what);
    fprintf(f, "  souk %-44s %s\n", "help", "this text");
}

static int cmd_serve(souk_config_t *cfg, int argc, char **argv)
{
    (void)argc; (void)argv;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) {
        fprintf(stderr, "souk: cannot find my own executable\n");
        return 1;
    }
    exe[n] = '\0';
    return supervisor_main(cfg, exe);
}

static int cmd_actor(souk_config_t *cfg, int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "souk actor: ROLE NAME [ARG]\n");
        return SOUK_EXIT_CONFIG;
    }
    const char *role = argv[1], *name = argv[2], *arg = argc > 3 ? argv[3] : NULL;
    souk_log_init(name, cfg->log_format, cfg->log_level);
    if (strcmp(role, "gateway") == 0) return gateway_main(cfg, name, arg);
    if (strcmp(role, "session") == 0) return session_main(cfg, name, arg);
    if (strcmp(role, "tool") == 0) return tools_main(cfg, name, arg);
    if (strcmp(role, "sender") == 0) return sender_main(cfg, name, arg);
    fprintf(stderr, "souk actor: unknown role %s\n", role);
    return SOUK_EXIT_CONFIG;
}

static int cmd_config(souk_config_t *cfg, int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--table") == 0)
        souk_config_print_table(stdout);
    else
        souk_config_print(cfg, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_file = NULL;
    int i = 1;
    /* --config may come before or right after the command */
    if (i + 1 < argc && strcmp(argv[i], "--config") == 0) {
        config_file = argv[i + 1];
        i += 2;
    }
    if (i >= argc || strcmp(argv[i], "help") == 0 || strcmp(argv[i], "--help") == 0
        || strcmp(argv[i], "-h") == 0) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? 2 : 0;
    }
    const char *command = argv[i];
    int cargc = argc - i;
    char **cargv = argv + i;
    if (!config_file && cargc > 2 && strcmp(cargv[1], "--config") == 0) {
        config_file = cargv[2];
        cargv[2] = cargv[0];
        cargv += 2;
        cargc -= 2;
    }
    for (size_t k = 0; k < sizeof s_commands / sizeof s_commands[0]; k++) {
        if (strcmp(s_commands[k].name, command) != 0)
            continue;
        souk_config_t cfg;
        char err[512];
        if (souk_config_load(&cfg, config_file, err, sizeof err) != SOUK_OK) {
            fprintf(stderr, "souk: configuration error: %s\n", err);
            return SOUK_EXIT_CONFIG;
        }
        souk_log_init(command, cfg.log_format, cfg.log_level);
        int rc = s_commands[k].fn(&cfg, cargc, cargv);
        souk_config_clear(&cfg);
        return rc;
    }
    fprintf(stderr, "souk: unknown command '%s'\n\n", command);
    usage(stderr);
    return 2;
}
