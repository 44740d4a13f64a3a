/* souk configuration: every variable in one table.
 *
 * The README's configuration table, `souk config`, validation and the
 * struct below all come from SOUK_CONFIG_VARS. Values come from the
 * environment; `souk serve --config FILE` reads NAME=value lines (the
 * systemd EnvironmentFile syntax) first and exports them, so the actor
 * processes it starts see the same configuration through their environment.
 * A value set in the environment wins over the file. */
#ifndef SOUK_CONFIG_H
#define SOUK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* V(ENV_NAME, kind, field, default, min, max, help)
 * kinds: str, secret (a str never printed), int (min..max), url (http or
 * https, or empty), enum (choices in SOUK_CONFIG_CHOICES). */
#define SOUK_CONFIG_VARS(V)                                                                         \
    V(SOUK_DATA, str, data_dir, "./var", 0, 0, "Data folder: souk.db, run/ sockets, the development token") \
    V(SOUK_PORT, int, port, "8080", 1, 65535, "HTTP port of the gateway (when unset: PORT, then 8080)") \
    V(SOUK_LISTEN, str, listen, "", 0, 0, "Interface to listen on (e.g. lo); empty: every interface") \
    V(SOUK_PUBLIC_URL, url, public_url, "", 0, 0, "Public base URL Twilio calls (signatures are checked against it); default http://localhost:PORT") \
    V(TWILIO_AUTH_TOKEN, secret, twilio_auth_token, "", 0, 0, "Twilio auth token; unset: a development token is generated in the data folder") \
    V(TWILIO_ACCOUNT_SID, str, twilio_account_sid, "", 0, 0, "Twilio account SID; unset: the sender runs in console mode") \
    V(TWILIO_API_BASE, url, twilio_api_base, "https://api.twilio.com", 0, 0, "Base URL of Twilio's REST API") \
    V(TWILIO_WHATSAPP_FROM, str, twilio_whatsapp_from, "", 0, 0, "Sender number, e.g. whatsapp:+14155238886") \
    V(TWILIO_TEMPLATE_SID, str, twilio_template_sid, "", 0, 0, "Content template (ContentSid) for messages outside the 24-hour window") \
    V(SOUK_REPLY_BUDGET_MS, int, reply_budget_ms, "3000", 50, 14000, "How long the webhook waits for an inline answer before acknowledging") \
    V(SOUK_DEBOUNCE_MS, int, debounce_ms, "1200", 0, 10000, "A user's burst of messages within this window is answered as one turn") \
    V(SOUK_SESSION_IDLE_S, int, session_idle_s, "300", 1, 86400, "A session actor exits after this many idle seconds") \
    V(SOUK_SESSIONS_MAX, int, sessions_max, "5000", 1, 1000000, "Cap on live session actors (least recently used idle ones are asked to exit)") \
    V(SOUK_TOOLS, int, tools, "2", 1, 64, "Size of the tool actor pool") \
    V(SOUK_SEND_RATE, int, send_rate, "80", 1, 10000, "Outbound messages per second per sender number") \
    V(SOUK_HEARTBEAT_MS, int, heartbeat_ms, "1000", 20, 60000, "Actor heartbeat interval; silent for 3 intervals means hung") \
    V(SOUK_DRAIN_MS, int, drain_ms, "5000", 0, 600000, "On SIGTERM, how long in-flight work may drain") \
    V(SOUK_RESTART_MAX, int, restart_max, "5", 0, 1000, "Restart intensity: more restarts of one child than this ...") \
    V(SOUK_RESTART_WINDOW_S, int, restart_window_s, "10", 1, 3600, "... within this many seconds stops souk (exit non-zero)") \
    V(SOUK_QUARANTINE_CRASHES, int, quarantine_crashes, "3", 1, 1000, "Crashes of one user's session within the restart window before that user is quarantined") \
    V(SOUK_QUARANTINE_S, int, quarantine_s, "600", 1, 86400, "How long a quarantined user gets an apology instead of a session") \
    V(SOUK_STORE, enum, store, "sqlite", 0, 0, "Store backend: sqlite or dynamodb") \
    V(SOUK_LOG_FORMAT, enum, log_format, "logfmt", 0, 0, "Log format: logfmt or json") \
    V(SOUK_LOG_LEVEL, enum, log_level, "info", 0, 0, "Log level: debug, info, warn or error") \
    V(SOUK_AGENT, enum, agent, "builtin", 0, 0, "Who answers: builtin (the shop assistant) or echo (a help text echoing the message: checks the channel without the shop)") \
    V(SOUK_SHOP_NAME, str, shop_name, "Souk Demo Shop", 0, 0, "The shop's name, as the assistant says it") \
    V(SOUK_MERCHANT_WHATSAPP, str, merchant_whatsapp, "", 0, 0, "Merchant's WhatsApp number for new-order and ticket notifications") \
    V(SOUK_MERCHANT_WEBHOOK, url, merchant_webhook, "", 0, 0, "URL that receives new orders and tickets as JSON POSTs") \
    V(SOUK_STT, enum, stt, "pocketsphinx", 0, 0, "Speech to text for voice notes: pocketsphinx (offline, the shop's own language model) or openai (OPENAI_BASE_URL/audio/transcriptions, whisper-1)") \
    V(SOUK_MEDIA_HOSTS, str, media_hosts, "api.twilio.com,*.twiliocdn.com", 0, 0, "Hosts media may be downloaded from (comma separated; *.example.com matches its subdomains; plain http only to loopback); Basic auth goes only to the host of TWILIO_API_BASE") \
    V(SOUK_MEDIA_MAX_BYTES, int, media_max_bytes, "16777216", 1024, 16777216, "Largest media download; a longer transfer is aborted")

/* Choices of the enum variables, checked at load. */
#define SOUK_CONFIG_CHOICES(C)                                               \
    C(store, "sqlite|dynamodb")                                              \
    C(agent, "builtin|echo")                                              \
    C(stt, "pocketsphinx|openai")                                            \
    C(log_format, "logfmt|json")                                             \
    C(log_level, "debug|info|warn|error")

#define SOUK_CFG_T_str    char *
#define SOUK_CFG_T_secret char *
#define SOUK_CFG_T_url    char *
#define SOUK_CFG_T_enum   char *
#define SOUK_CFG_T_int    int64_t

typedef struct {
#define V(env, kind, field, def, lo, hi, help) SOUK_CFG_T_##kind field;
    SOUK_CONFIG_VARS(V)
#undef V
    char run_dir[256];  /* <data_dir>/run: ipc sockets live here */
    bool token_generated; /* twilio_auth_token came from the data folder */
} souk_config_t;

/* Loads the configuration: `file` (NULL for none) is read and its values
 * exported to the environment where the environment does not set them,
 * then every variable is parsed and checked. On error returns SOUK_ECONFIG
 * with a message naming the variable in `err`. The caller releases `cfg`
 * with souk_config_clear(). */
int souk_config_load(souk_config_t *cfg, const char *file, char *err, size_t errlen);

/* Creates the data and run folders, and when no TWILIO_AUTH_TOKEN is set
 * loads or creates the development token (data folder, mode 0600) and
 * exports it. Returns SOUK_ECONFIG with a message when a folder cannot be
 * made. */
int souk_config_prepare_data(souk_config_t *cfg, char *err, size_t errlen);

/* Frees the strings of `cfg` and zeroes it. */
void souk_config_clear(souk_config_t *cfg);

/* Writes the effective configuration as NAME=value lines (secrets shown as
 * "(set)" or "(unset)") to `out`. */
void souk_config_print(const souk_config_t *cfg, void *out /* FILE * */);

/* Writes the README's configuration table (Markdown) to `out`. */
void souk_config_print_table(void *out /* FILE * */);

#endif
