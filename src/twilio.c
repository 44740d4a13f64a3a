/* twilio: pure helpers for the Twilio WhatsApp channel (see souk/twilio.h).
 *
 * Everything here works on bytes already in memory, so the gateway can verify
 * and answer a webhook without waiting on anything, and the same code signs
 * requests in `souk chat` and the tests. The signature rules copy Twilio's
 * helper libraries, not the prose of its docs: where the two differ (distinct
 * values per name, port spellings) the libraries are what Twilio's servers
 * agree with. */
#include "souk/twilio.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dl.h"

#include "souk/error.h"

/* ---- growable string --------------------------------------------------- */

/* A failed allocation is sticky, so builders append unchecked and test once
 * when they take the result. */
typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} s_buf_t;

static void s_buf_put(s_buf_t *b, const void *s, size_t n)
{
    if (b->failed)
        return;
    if (n >= SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) {
            b->failed = true;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void s_buf_puts(s_buf_t *b, const char *s)
{
    s_buf_put(b, s, strlen(s));
}

/* The NUL-terminated result, owned by the caller; NULL if any append failed. */
static char *s_buf_take(s_buf_t *b)
{
    if (!b->failed && !b->data)
        s_buf_put(b, "", 0);
    if (b->failed) {
        free(b->data);
        b->data = NULL;
    }
    return b->data;
}

/* ---- UTF-8 ------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (n bytes available) and its
 * code point in *cp; 0 if ill-formed. RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF. */
static size_t s_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t v, min;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2, v = s[0] & 0x1F, min = 0x80;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3, v = s[0] & 0x0F, min = 0x800;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        len = 4, v = s[0] & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static bool s_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k)
        if ((k = s_utf8_next(u + i, n - i, &cp)) == 0)
            return false;
    return true;
}

/* ---- forms ------------------------------------------------------------- */

typedef struct {
    char *name;
    char *value;
} s_pair_t;

struct twilio_form {
    s_pair_t *pairs;
    size_t count, cap;
};

twilio_form_t *twilio_form_new(void)
{
    return calloc(1, sizeof(twilio_form_t));
}

void twilio_form_free(twilio_form_t **form_p)
{
    if (!form_p || !*form_p)
        return;
    twilio_form_t *form = *form_p;
    for (size_t i = 0; i < form->count; i++) {
        free(form->pairs[i].name);
        free(form->pairs[i].value);
    }
    free(form->pairs);
    free(form);
    *form_p = NULL;
}

/* Appends the pair, taking ownership of name and value even on failure, so
 * that callers have a single exit path. */
static int s_form_push(twilio_form_t *form, char *name, char *value)
{
    int rc = SOUK_OK;
    if (form->count == TWILIO_FORM_MAX_PARAMS)
        rc = SOUK_ETOOBIG;
    else if (form->count == form->cap) {
        size_t cap = form->cap ? form->cap * 2 : 16;
        s_pair_t *pairs = realloc(form->pairs, cap * sizeof *pairs);
        if (pairs) {
            form->pairs = pairs;
            form->cap = cap;
        } else
            rc = SOUK_ENOMEM;
    }
    if (rc != SOUK_OK) {
        free(name);
        free(value);
        return rc;
    }
    form->pairs[form->count++] = (s_pair_t){ name, value };
    return SOUK_OK;
}

static int s_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one byte of s[*i..n) ('+', %XX or literal) and advances *i past it;
 * -1 for a malformed escape or a NUL byte, which no C string can carry. */
static int s_url_decode_byte(const char *s, size_t n, size_t *i)
{
    int c = (unsigned char)s[*i];
    if (c == '+')
        c = ' ';
    else if (c == '%') {
        int hi = n - *i >= 3 ? s_hex_value(s[*i + 1]) : -1;
        int lo = hi >= 0 ? s_hex_value(s[*i + 2]) : -1;
        if (lo < 0)
            return -1;
        c = (hi << 4) | lo;
        *i += 2;
    }
    (*i)++;
    return c == 0 ? -1 : c;
}

/* *out is a new string with s[0..n) form-decoded and checked as UTF-8. */
static int s_url_decode(const char *s, size_t n, char **out)
{
    char *d = malloc(n + 1);
    size_t len = 0;
    if (!d)
        return SOUK_ENOMEM;
    for (size_t i = 0; i < n;) {
        int c = s_url_decode_byte(s, n, &i);
        if (c < 0) {
            free(d);
            return SOUK_EINVAL;
        }
        d[len++] = (char)c;
    }
    d[len] = '\0';
    if (!s_utf8_valid(d, len)) {
        free(d);
        return SOUK_EINVAL;
    }
    *out = d;
    return SOUK_OK;
}

/* One "name=value" (or bare "name") of n > 0 bytes. */
static int s_form_parse_pair(twilio_form_t *form, const char *s, size_t n)
{
    const char *eq = memchr(s, '=', n);
    size_t name_len = eq ? (size_t)(eq - s) : n;
    char *name = NULL, *value = NULL;
    int rc = s_url_decode(s, name_len, &name);
    if (rc == SOUK_OK)
        rc = eq ? s_url_decode(eq + 1, n - name_len - 1, &value)
                : s_url_decode("", 0, &value);
    if (rc != SOUK_OK) {
        free(name);
        free(value);
        return rc;
    }
    return s_form_push(form, name, value);
}

int twilio_form_parse(const char *body, size_t len, twilio_form_t **out)
{
    if (!out || (!body && len))
        return SOUK_EINVAL;
    twilio_form_t *form = twilio_form_new();
    if (!form)
        return SOUK_ENOMEM;
    int rc = SOUK_OK;
    for (size_t pos = 0; rc == SOUK_OK && pos < len;) {
        const char *amp = memchr(body + pos, '&', len - pos);
        size_t end = amp ? (size_t)(amp - body) : len;
        if (end > pos)
            rc = s_form_parse_pair(form, body + pos, end - pos);
        pos = end + 1;
    }
    if (rc != SOUK_OK) {
        twilio_form_free(&form);
        return rc;
    }
    *out = form;
    return SOUK_OK;
}

int twilio_form_add(twilio_form_t *form, const char *name, const char *value)
{
    if (!form || !name || !value)
        return SOUK_EINVAL;
    if (!s_utf8_valid(name, strlen(name)) ||
        !s_utf8_valid(value, strlen(value)))
        return SOUK_EINVAL;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return SOUK_ENOMEM;
    }
    return s_form_push(form, n, v);
}

size_t twilio_form_count(const twilio_form_t *form)
{
    return form ? form->count : 0;
}

const char *twilio_form_name(const twilio_form_t *form, size_t i)
{
    return i < twilio_form_count(form) ? form->pairs[i].name : NULL;
}

const char *twilio_form_value(const twilio_form_t *form, size_t i)
{
    return i < twilio_form_count(form) ? form->pairs[i].value : NULL;
}

const char *twilio_form_get(const twilio_form_t *form, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < twilio_form_count(form); i++)
        if (strcmp(form->pairs[i].name, name) == 0)
            return form->pairs[i].value;
    return NULL;
}

/* Percent-encodes all but RFC 3986 unreserved characters so any decoder,
 * strict or lenient, reads back the same bytes. */
static void s_buf_put_urlencoded(s_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || strchr("-._~", *p))
            s_buf_put(b, p, 1);
        else if (*p == ' ')
            s_buf_put(b, "+", 1);
        else {
            char esc[3] = { '%', hex[*p >> 4], hex[*p & 0x0F] };
            s_buf_put(b, esc, 3);
        }
    }
}

int twilio_form_encode(const twilio_form_t *form, char **out)
{
    if (!form || !out)
        return SOUK_EINVAL;
    s_buf_t b = { 0 };
    for (size_t i = 0; i < form->count; i++) {
        if (i > 0)
            s_buf_put(&b, "&", 1);
        s_buf_put_urlencoded(&b, form->pairs[i].name);
        s_buf_put(&b, "=", 1);
        s_buf_put_urlencoded(&b, form->pairs[i].value);
    }
    char *s = s_buf_take(&b);
    if (!s)
        return SOUK_ENOMEM;
    *out = s;
    return SOUK_OK;
}

/* ---- X-Twilio-Signature ------------------------------------------------ */

static int s_pair_cmp(const void *a, const void *b)
{
    const s_pair_t *x = *(const s_pair_t *const *)a;
    const s_pair_t *y = *(const s_pair_t *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* url[0..url_len) then name+value of every distinct pair, sorted by name then
 * value in byte order. Distinct, because the helper libraries sort a set of
 * values per name: a repeated identical pair counts once. */
static int s_signing_string(const char *url, size_t url_len,
                            const twilio_form_t *form, char **out)
{
    size_t n = twilio_form_count(form);
    const s_pair_t **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return SOUK_ENOMEM;
    for (size_t i = 0; i < n; i++)
        sorted[i] = &form->pairs[i];
    qsort(sorted, n, sizeof *sorted, s_pair_cmp);
    s_buf_t b = { 0 };
    s_buf_put(&b, url, url_len);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && s_pair_cmp(&sorted[i - 1], &sorted[i]) == 0)
            continue;
        s_buf_puts(&b, sorted[i]->name);
        s_buf_puts(&b, sorted[i]->value);
    }
    free(sorted);
    *out = s_buf_take(&b);
    return *out ? SOUK_OK : SOUK_ENOMEM;
}


/* libcrypto, loaded on first use (src/dl.h): only the gateway and `souk
 * chat` sign or verify, and every other actor — one per user — would pay
 * its loading and relocations at start otherwise. */
typedef struct {
    __typeof__(HMAC) *hmac;
    __typeof__(EVP_sha1) *sha1;
    __typeof__(EVP_sha256) *sha256;
    __typeof__(EVP_Digest) *digest;
    __typeof__(EVP_EncodeBlock) *encode_block;
    __typeof__(CRYPTO_memcmp) *memcmp_ct;
} crypto_t;

static crypto_t s_crypto_table;
static const char *const s_crypto_names[] = {
    "HMAC", "EVP_sha1", "EVP_sha256", "EVP_Digest", "EVP_EncodeBlock", "CRYPTO_memcmp",
};
_Static_assert(sizeof(crypto_t) == sizeof s_crypto_names / sizeof s_crypto_names[0] * sizeof(void *),
               "crypto_t is one function pointer per name");
static souk_dl_t s_crypto_lib = {
    .soname = "libcrypto.so.3", .package = "libssl3", .names = s_crypto_names,
    .count = sizeof s_crypto_names / sizeof s_crypto_names[0], .table = &s_crypto_table,
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

int twilio_crypto_load(char *err, size_t errlen)
{
    return souk_dl_load(&s_crypto_lib, err, errlen);
}

static const crypto_t *s_crypto(void) { return souk_dl_table(&s_crypto_lib); }

static int s_hmac_sha1_b64(const char *key, const char *data, size_t len,
                           char out[TWILIO_SIGNATURE_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    size_t key_len = strlen(key);
    if (key_len > INT_MAX)
        return SOUK_EINVAL;
    const crypto_t *c = s_crypto();
    if (!c->hmac(c->sha1(), key, (int)key_len, (const unsigned char *)data, len, md, &md_len)
        || md_len != 20) /* 20 bytes: 28 base64 chars */
        return SOUK_ENOMEM;
    c->encode_block((unsigned char *)out, md, (int)md_len);
    return SOUK_OK;
}

static int s_sign(const char *token, const char *url, size_t url_len,
                  const twilio_form_t *form,
                  char out[TWILIO_SIGNATURE_LEN + 1])
{
    char *data = NULL;
    int rc = s_signing_string(url, url_len, form, &data);
    if (rc == SOUK_OK)
        rc = s_hmac_sha1_b64(token, data, strlen(data), out);
    free(data);
    return rc;
}

/* The signed part of a URL: everything before its #fragment, which Twilio
 * uses for connection overrides (#rt=…) and leaves out of the signature. */
static size_t s_url_signed_len(const char *url)
{
    return strcspn(url, "#");
}

int twilio_signature_compute(const char *auth_token, const char *url,
                             const twilio_form_t *form,
                             char out[TWILIO_SIGNATURE_LEN + 1])
{
    if (!auth_token || !*auth_token || !url || !out)
        return SOUK_EINVAL;
    return s_sign(auth_token, url, s_url_signed_len(url), form, out);
}

/* Where the port sits in "scheme://[userinfo@]host[:port]/…". */
typedef struct {
    size_t scheme_len;
    size_t port_colon; /* SIZE_MAX when the URL names no port */
    size_t authority_end;
} s_authority_t;

static bool s_url_authority(const char *url, size_t len, s_authority_t *a)
{
    a->scheme_len = strspn(url, "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    if (a->scheme_len == 0 || a->scheme_len + 3 > len ||
        memcmp(url + a->scheme_len, "://", 3) != 0)
        return false;
    size_t start = a->scheme_len + 3, host = start;
    a->authority_end = start + strcspn(url + start, "/?#");
    if (a->authority_end > len)
        a->authority_end = len;
    for (size_t i = start; i < a->authority_end; i++)
        if (url[i] == '@')
            host = i + 1;
    if (url[host] == '[') { /* IPv6 literal: its colons are not the port's */
        const char *close = memchr(url + host, ']', a->authority_end - host);
        if (!close)
            return false;
        host = (size_t)(close - url);
    }
    const char *colon = memchr(url + host, ':', a->authority_end - host);
    a->port_colon = colon ? (size_t)(colon - url) : SIZE_MAX;
    return true;
}

static const char *s_default_port(const char *url, size_t scheme_len)
{
    if (scheme_len == 5 && strncasecmp(url, "https", 5) == 0)
        return ":443";
    if (scheme_len == 4 && strncasecmp(url, "http", 4) == 0)
        return ":80";
    return NULL;
}

/* url[0..len) with its port removed if it has one, else with the scheme's
 * default port added: Twilio signs whichever spelling its backend saw. NULL
 * when there is no other spelling or out of memory. */
static char *s_url_port_variant(const char *url, size_t len)
{
    s_authority_t a;
    if (!s_url_authority(url, len, &a))
        return NULL;
    const char *port = "";
    size_t head = a.port_colon;
    if (a.port_colon == SIZE_MAX) {
        port = s_default_port(url, a.scheme_len);
        if (!port)
            return NULL;
        head = a.authority_end;
    }
    s_buf_t b = { 0 };
    s_buf_put(&b, url, head);
    s_buf_puts(&b, port);
    s_buf_put(&b, url + a.authority_end, len - a.authority_end);
    return s_buf_take(&b);
}

static bool s_signature_matches(const char *token, const char *url,
                                size_t url_len, const twilio_form_t *form,
                                const char *signature)
{
    char expected[TWILIO_SIGNATURE_LEN + 1];
    return s_sign(token, url, url_len, form, expected) == SOUK_OK &&
           s_crypto()->memcmp_ct(expected, signature, TWILIO_SIGNATURE_LEN) == 0;
}

bool twilio_signature_valid(const char *auth_token, const char *url,
                            const twilio_form_t *form,
                            const char *signature_b64)
{
    if (!auth_token || !*auth_token || !url || !signature_b64)
        return false;
    size_t sig_len = strnlen(signature_b64, TWILIO_SIGNATURE_LEN + 1);
    if (sig_len != TWILIO_SIGNATURE_LEN)
        return false;
    size_t len = s_url_signed_len(url);
    if (s_signature_matches(auth_token, url, len, form, signature_b64))
        return true;
    char *other = s_url_port_variant(url, len);
    bool ok = other && s_signature_matches(auth_token, other, strlen(other),
                                           form, signature_b64);
    free(other);
    return ok;
}

/* ---- JSON bodies ------------------------------------------------------- */

int twilio_body_sha256(const void *body, size_t len,
                       char out[TWILIO_SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if ((!body && len) || !out)
        return SOUK_EINVAL;
    const crypto_t *c = s_crypto();
    if (!c->digest(body ? body : "", len, md, &md_len, c->sha256(), NULL))
        return SOUK_ENOMEM;
    for (unsigned int i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0F];
    }
    out[2 * md_len] = '\0';
    return SOUK_OK;
}

/* The bodySHA256 query parameter, lowercased into out; false if absent or
 * of the wrong length. */
static bool s_url_body_hash(const char *url,
                            char out[TWILIO_SHA256_HEX_LEN + 1])
{
    size_t len = s_url_signed_len(url);
    const char *q = memchr(url, '?', len);
    twilio_form_t *query = NULL;
    if (!q)
        return false;
    size_t query_len = (size_t)(url + len - q - 1);
    if (twilio_form_parse(q + 1, query_len, &query) != SOUK_OK)
        return false;
    const char *hash = twilio_form_get(query, "bodySHA256");
    bool ok = hash && strlen(hash) == TWILIO_SHA256_HEX_LEN;
    for (size_t i = 0; ok && i <= TWILIO_SHA256_HEX_LEN; i++)
        out[i] = hash[i] >= 'A' && hash[i] <= 'F' ? hash[i] | 0x20 : hash[i];
    twilio_form_free(&query);
    return ok;
}

bool twilio_body_sha256_valid(const char *url_with_query, const void *body,
                              size_t len)
{
    char expected[TWILIO_SHA256_HEX_LEN + 1], given[TWILIO_SHA256_HEX_LEN + 1];
    return url_with_query &&
           twilio_body_sha256(body, len, expected) == SOUK_OK &&
           s_url_body_hash(url_with_query, given) &&
           s_crypto()->memcmp_ct(expected, given, TWILIO_SHA256_HEX_LEN) == 0;
}

/* ---- TwiML ------------------------------------------------------------- */

static const char *s_xml_entity(uint32_t cp)
{
    switch (cp) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&apos;";
    }
    return NULL;
}

/* XML 1.0 Char production; anything else makes the whole TwiML unparsable
 * and Twilio then drops the reply (error 12100). */
static bool s_xml_char_allowed(uint32_t cp)
{
    return cp == 0x9 || cp == 0xA || cp == 0xD ||
           (cp >= 0x20 && cp != 0xFFFE && cp != 0xFFFF);
}

static void s_buf_put_xml_escaped(s_buf_t *b, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text);
    for (size_t i = 0, k; i < n; i += k) {
        uint32_t cp;
        k = s_utf8_next(s + i, n - i, &cp);
        if (k == 0) {
            s_buf_puts(b, "\xEF\xBF\xBD");
            k = 1;
        } else if (s_xml_entity(cp))
            s_buf_puts(b, s_xml_entity(cp));
        else if (s_xml_char_allowed(cp))
            s_buf_put(b, s + i, k);
    }
}

char *twilio_xml_escape(const char *text)
{
    if (!text)
        return NULL;
    s_buf_t b = { 0 };
    s_buf_put_xml_escaped(&b, text);
    return s_buf_take(&b);
}

#define S_XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

char *twilio_twiml_message(const char *text)
{
    if (!text)
        return NULL;
    s_buf_t b = { 0 };
    s_buf_puts(&b, S_XML_DECL "<Response><Message>");
    s_buf_put_xml_escaped(&b, text);
    s_buf_puts(&b, "</Message></Response>");
    return s_buf_take(&b);
}

char *twilio_twiml_empty(void)
{
    return strdup(S_XML_DECL "<Response/>");
}

/* ---- identities and logs ----------------------------------------------- */

bool twilio_waid_matches_from(const char *waid, const char *from)
{
    static const char prefix[] = "whatsapp:+";
    if (!waid || !from || strncmp(from, prefix, sizeof prefix - 1) != 0)
        return false;
    size_t digits = strspn(waid, "0123456789");
    if (digits == 0 || digits > TWILIO_WAID_MAX_DIGITS || waid[digits] != '\0')
        return false;
    return strcmp(from + sizeof prefix - 1, waid) == 0;
}

static bool s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

void twilio_mask_phone(const char *in, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    if (!in)
        in = "";
    size_t digits = 0;
    for (const char *p = in; *p; p++)
        digits += s_is_digit(*p);
    /* Short numbers show less: at least half the digits stay hidden. */
    size_t tail = digits >= 4 ? 2 : 0;
    size_t room = digits - tail - (digits + 1) / 2;
    size_t head = room < 3 ? room : 3;
    size_t seen = 0, j = 0;
    for (const char *p = in; *p && j + 1 < outlen; p++) {
        bool hide = s_is_digit(*p) && seen >= head && seen < digits - tail;
        seen += s_is_digit(*p);
        out[j++] = hide ? '*' : *p;
    }
    out[j] = '\0';
}

/* ---- long replies ------------------------------------------------------ */

typedef struct {
    char **v;
    size_t n, cap;
} s_parts_t;

static int s_parts_push(s_parts_t *parts, const char *s, size_t len)
{
    if (parts->n == parts->cap) {
        size_t cap = parts->cap ? parts->cap * 2 : 4;
        char **v = realloc(parts->v, cap * sizeof *v);
        if (!v)
            return SOUK_ENOMEM;
        parts->v = v;
        parts->cap = cap;
    }
    char *copy = strndup(s, len);
    if (!copy)
        return SOUK_ENOMEM;
    parts->v[parts->n++] = copy;
    return SOUK_OK;
}

static bool s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *s_skip_space(const char *p)
{
    while (s_is_space(*p))
        p++;
    return p;
}

/* Bytes taken by the first max_chars code points of valid UTF-8 s. */
static size_t s_utf8_prefix_bytes(const char *s, size_t max_chars)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    for (size_t chars = 0; u[i] && chars < max_chars; chars++)
        i += u[i] < 0x80 ? 1 : u[i] < 0xE0 ? 2 : u[i] < 0xF0 ? 3 : 4;
    return i;
}

/* Where to end a part of p that may take at most lim bytes (p is longer):
 * the last separator starting within (0, lim], the coarsest kind first. The
 * separator itself may lie past lim since it is trimmed away. */
static void s_find_cut(const char *p, size_t lim, size_t *cut, size_t *next)
{
    static const char *const seps[] = { "\n\n", "\n", " " };
    for (size_t k = 0; k < sizeof seps / sizeof *seps; k++) {
        size_t sep_len = strlen(seps[k]);
        for (size_t i = lim; i > 0; i--) {
            if (strncmp(p + i, seps[k], sep_len) == 0) {
                *cut = i;
                *next = i + sep_len;
                return;
            }
        }
    }
    *cut = *next = lim;
}

int twilio_split_body(const char *text, size_t max_chars, char ***parts,
                      size_t *nparts)
{
    if (!text || max_chars == 0 || !parts || !nparts ||
        !s_utf8_valid(text, strlen(text)))
        return SOUK_EINVAL;
    s_parts_t acc = { 0 };
    int rc = SOUK_OK;
    for (const char *p = s_skip_space(text); rc == SOUK_OK && *p;) {
        size_t cut = s_utf8_prefix_bytes(p, max_chars), next = cut;
        if (p[cut] != '\0')
            s_find_cut(p, cut, &cut, &next);
        /* p[0] is not a space, so the part cannot trim down to nothing. */
        while (s_is_space(p[cut - 1]))
            cut--;
        rc = s_parts_push(&acc, p, cut);
        p = s_skip_space(p + next);
    }
    if (rc != SOUK_OK) {
        twilio_split_free(&acc.v, acc.n);
        return rc;
    }
    *parts = acc.v;
    *nparts = acc.n;
    return SOUK_OK;
}

void twilio_split_free(char ***parts_p, size_t nparts)
{
    if (!parts_p || !*parts_p)
        return;
    for (size_t i = 0; i < nparts; i++)
        free((*parts_p)[i]);
    free(*parts_p);
    *parts_p = NULL;
}
