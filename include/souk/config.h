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
    V(SOUK_SESSION_HIBERNATE_MS, int, session_hibernate_ms, "5000", 0, 3600000, "A session quiet this long closes its store handle and spare links until its next message (one node on SQLite: with a node id it keeps renewing its lease; 0: never)") \
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
    V(SOUK_STORE_DIR, str, store_dir, "", 0, 0, "Folder of the SQLite database (souk.db); empty: SOUK_DATA. Nodes on one machine may share it") \
    V(SOUK_NODE_ID, str, node_id, "", 0, 0, "This node's name among several sharing one database; set (or SOUK_STORE=dynamodb, where it defaults to hostname:port) turns on session leases") \
    V(SOUK_LEASE_MS, int, lease_ms, "15000", 1000, 600000, "Several nodes: how long a user's session lease lasts without renewal (a dead node's users move after this)") \
    V(SOUK_CONSOLE_TOKEN, secret, console_token, "", 0, 0, "Token of the web console at /console; unset: the console is off (./scripts/run sets one)") \
    V(DYNAMODB_ENDPOINT, url, dynamodb_endpoint, "", 0, 0, "DynamoDB endpoint (dynalite, DynamoDB Local); unset: https://dynamodb.AWS_REGION.amazonaws.com") \
    V(SOUK_TABLE_PREFIX, str, table_prefix, "", 0, 0, "Prefix of the DynamoDB table name (PREFIXsouk): several shops in one account") \
    V(SOUK_VECTOR, enum, vector, "local", 0, 0, "Where product vectors live: local (products.vindex in the data folder) or pinecone") \
    V(PINECONE_INDEX_HOST, url, pinecone_index_host, "", 0, 0, "Pinecone index host, e.g. https://shop-abc123.svc.aped-4627-b74a.pinecone.io (SOUK_VECTOR=pinecone)") \
    V(PINECONE_API_KEY, secret, pinecone_api_key, "", 0, 0, "Pinecone API key (SOUK_VECTOR=pinecone)") \
    V(SOUK_PINECONE_NAMESPACE, str, pinecone_namespace, "", 0, 0, "Pinecone namespace of this shop; empty: SOUK_SHOP_NAME as a slug (souk-demo-shop)") \
    V(SOUK_LLM, enum, llm, "", 0, 0, "Who the shop assistant asks: openai (chat completions at OPENAI_BASE_URL, the built-in agent as fallback) or builtin; unset: openai when OPENAI_API_KEY is set, else builtin") \
    V(OPENAI_API_KEY, secret, openai_api_key, "", 0, 0, "API key sent as a Bearer token to OPENAI_BASE_URL (chat, embeddings); may stay unset for a local server") \
    V(OPENAI_BASE_URL, url, openai_base_url, "https://api.openai.com/v1", 0, 0, "Base URL of the OpenAI API or of an OpenAI-compatible server (vLLM, llama.cpp server, Ollama)") \
    V(SOUK_LLM_MODEL, str, llm_model, "gpt-4o-mini", 0, 0, "Chat model of the LLM agent and of the intent classifier") \
    V(SOUK_LLM_CLASSIFY, enum, llm_classify, "hybrid", 0, 0, "Intent classification by the model: always, hybrid (only when the built-in classifier is unsure) or never") \
    V(SOUK_LLM_TIMEOUT_MS, int, llm_timeout_ms, "8000", 100, 120000, "Longest an LLM call may take, retries included, before the built-in agent answers") \
    V(SOUK_LLM_MAX_STEPS, int, llm_max_steps, "6", 1, 20, "Model calls per turn (each may call tools) before the turn ends") \
    V(SOUK_EMBEDDER, str, embedder, "local", 0, 0, "Embedder of the search index: local, local:DIM or openai (/embeddings at OPENAI_BASE_URL)") \
    V(SOUK_EMBED_MODEL, str, embed_model, "text-embedding-3-small", 0, 0, "Embeddings model with SOUK_EMBEDDER=openai") \
    V(SOUK_EMBED_DIM, int, embed_dim, "1536", 64, 4096, "Dimensions asked of the embeddings model (SOUK_EMBEDDER=openai)") \
    V(SOUK_STT, enum, stt, "pocketsphinx", 0, 0, "Speech to text for voice notes: pocketsphinx (offline, the shop's own language model) or openai (OPENAI_BASE_URL/audio/transcriptions, whisper-1)") \
    V(SOUK_MEDIA_HOSTS, str, media_hosts, "api.twilio.com,*.twiliocdn.com", 0, 0, "Hosts media may be downloaded from (comma separated; *.example.com matches its subdomains; plain http only to loopback); Basic auth goes only to the host of TWILIO_API_BASE") \
    V(SOUK_MEDIA_MAX_BYTES, int, media_max_bytes, "16777216", 1024, 16777216, "Largest media download; a longer transfer is aborted")

/* Choices of the enum variables, checked at load. */
#define SOUK_CONFIG_CHOICES(C)                                               \
    C(store, "sqlite|dynamodb")                                              \
    C(agent, "builtin|echo")                                              \
    C(stt, "pocketsphinx|openai")                                            \
    C(log_format, "logfmt|json")                                             \
    C(log_level, "debug|info|warn|error")                                   \
    C(vector, "local|pinecone") \
    C(llm, "openai|builtin")                                                 \
    C(llm_classify, "always|hybrid|never")

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
    bool multi_node;      /* several nodes share the store: sessions take leases */
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
