/* twilio: the pure half of the Twilio WhatsApp channel.
 *
 * Parsing of webhook form bodies, X-Twilio-Signature computation and
 * verification, bodySHA256 checks for JSON bodies, TwiML replies, sender
 * identity checks, phone masking for logs and splitting of long replies.
 * No I/O: the gateway feeds it bytes it already received; `souk chat` and the
 * tests use it to sign. Behaviour follows Twilio's helper libraries, whose
 * public test vectors tests/test_twilio.c replays.
 *
 * Errors are the negative codes of souk/error.h; a call that fails has
 * produced no output and left its outputs' previous values untouched. */
#ifndef SOUK_TWILIO_H
#define SOUK_TWILIO_H

#include <stdbool.h>
#include <stddef.h>

/* A form body holds at most this many parameters (SOUK_ETOOBIG beyond). */
#define TWILIO_FORM_MAX_PARAMS 512
/* Length of a base64 HMAC-SHA1 signature, without the terminating NUL. */
#define TWILIO_SIGNATURE_LEN 28
/* Twilio refuses a message Body longer than this many characters (21617). */
#define TWILIO_BODY_MAX_CHARS 1600
/* A WaId is 1..this many digits. */
#define TWILIO_WAID_MAX_DIGITS 20
/* Length of a hex SHA-256 (bodySHA256), without the terminating NUL. */
#define TWILIO_SHA256_HEX_LEN 64

/* Ordered list of name/value pairs; names may repeat. Every name and value is
 * valid UTF-8 without NUL bytes. */
typedef struct twilio_form twilio_form_t;

/* ---- forms ------------------------------------------------------------- */

/* Empty form, owned by the caller (twilio_form_free); NULL if out of memory. */
twilio_form_t *twilio_form_new(void);

/* Parse an application/x-www-form-urlencoded body of len bytes (not
 * NUL-terminated; NULL allowed when len is 0). '+' is a space, %XX is decoded;
 * empty pairs ("a=1&&b=2") are skipped, a pair without '=' has an empty value.
 * On success *out is a new form the caller owns. SOUK_EINVAL: malformed %XX,
 * NUL byte, invalid UTF-8 after decoding; SOUK_ETOOBIG: more than
 * TWILIO_FORM_MAX_PARAMS parameters; SOUK_ENOMEM. */
int twilio_form_parse(const char *body, size_t len, twilio_form_t **out);

/* Append a copy of name=value (the form owns the copies). SOUK_EINVAL: NULL
 * argument or invalid UTF-8; SOUK_ETOOBIG: form full; SOUK_ENOMEM. */
int twilio_form_add(twilio_form_t *form, const char *name, const char *value);

/* Number of pairs; 0 for a NULL form. */
size_t twilio_form_count(const twilio_form_t *form);

/* Name / value of pair i, borrowed from the form; NULL if i is out of range. */
const char *twilio_form_name(const twilio_form_t *form, size_t i);
const char *twilio_form_value(const twilio_form_t *form, size_t i);

/* First value given for name, borrowed from the form; NULL if absent. */
const char *twilio_form_get(const twilio_form_t *form, const char *name);

/* Urlencode the form in order ("a=1&b=x+y"); only A-Z a-z 0-9 - . _ ~ stay
 * literal. *out is a new NUL-terminated string the caller frees. SOUK_EINVAL,
 * SOUK_ENOMEM. */
int twilio_form_encode(const twilio_form_t *form, char **out);

/* Free the form and set *form_p to NULL; NULL or *NULL is a no-op. */
void twilio_form_free(twilio_form_t **form_p);

/* ---- X-Twilio-Signature ------------------------------------------------ */

/* Loads libcrypto (signatures and hashes need it) if it is not loaded yet:
 * SOUK_OK, or SOUK_EUNAVAIL with why in err. The gateway calls it at start;
 * without it the first signature would abort the process. */
int twilio_crypto_load(char *err, size_t errlen);

/* Signature Twilio would send for a POST of form to url (the URL as configured,
 * never rebuilt from the request's Host header). Its #fragment is not signed;
 * a NULL form signs the URL alone (JSON bodies). Writes TWILIO_SIGNATURE_LEN
 * chars plus NUL to out. SOUK_EINVAL: NULL or empty token, NULL url;
 * SOUK_ENOMEM (also if libcrypto fails). */
int twilio_signature_compute(const char *auth_token, const char *url,
                             const twilio_form_t *form,
                             char out[TWILIO_SIGNATURE_LEN + 1]);

/* True if signature_b64 (the X-Twilio-Signature header) signs form for url as
 * given, or for url with its port removed, or with :443 / :80 added to an
 * http(s) URL that had none. Compares in constant time. False on any NULL
 * argument or empty token. */
bool twilio_signature_valid(const char *auth_token, const char *url,
                            const twilio_form_t *form,
                            const char *signature_b64);

/* ---- JSON bodies ------------------------------------------------------- */

/* Lowercase hex SHA-256 of body, the bodySHA256 query value Twilio sends.
 * Writes TWILIO_SHA256_HEX_LEN chars plus NUL to out. SOUK_EINVAL: body NULL
 * with len > 0; SOUK_ENOMEM if libcrypto fails. */
int twilio_body_sha256(const void *body, size_t len,
                       char out[TWILIO_SHA256_HEX_LEN + 1]);

/* True if url_with_query carries bodySHA256 equal to the SHA-256 of body.
 * The X-Twilio-Signature of such a request is then checked with a NULL form. */
bool twilio_body_sha256_valid(const char *url_with_query, const void *body,
                              size_t len);

/* ---- TwiML ------------------------------------------------------------- */

/* text with & < > " ' escaped as XML entities; characters XML 1.0 forbids are
 * dropped and invalid UTF-8 becomes U+FFFD. Caller frees; NULL if text is NULL
 * or out of memory. */
char *twilio_xml_escape(const char *text);

/* <?xml…?><Response><Message>escaped text</Message></Response>. Caller frees;
 * NULL if text is NULL or out of memory. */
char *twilio_twiml_message(const char *text);

/* <?xml…?><Response/>: the reply that sends nothing, never an empty body
 * (Twilio error 11200). Caller frees; NULL if out of memory. */
char *twilio_twiml_empty(void);

/* ---- identities and logs ----------------------------------------------- */

/* True if from is "whatsapp:+<digits>" and waid is exactly those digits
 * (1..TWILIO_WAID_MAX_DIGITS of them). False on NULL. */
bool twilio_waid_matches_from(const char *waid, const char *from);

/* Copy in to out (outlen bytes, always NUL-terminated when outlen > 0) with
 * the digits masked by '*' except a short leading prefix and the last two;
 * at most 5 and at most half of the digits are shown, other characters are
 * copied ("whatsapp:+14155550100" -> "whatsapp:+141******00"). */
void twilio_mask_phone(const char *in, char *out, size_t outlen);

/* ---- long replies ------------------------------------------------------ */

/* Split UTF-8 text into parts of at most max_chars code points, cutting at the
 * last paragraph break ("\n\n") that fits, else line break, else space, else
 * at a code point. Parts are trimmed of surrounding whitespace and never
 * empty (blank text gives 0 parts and a NULL array). On success *parts is a
 * new array of *nparts strings the caller frees with twilio_split_free.
 * SOUK_EINVAL: NULL argument, max_chars 0, invalid UTF-8; SOUK_ENOMEM. */
int twilio_split_body(const char *text, size_t max_chars, char ***parts,
                      size_t *nparts);

/* Free the nparts strings and the array, set *parts_p to NULL; NULL is a
 * no-op. */
void twilio_split_free(char ***parts_p, size_t nparts);

#endif
