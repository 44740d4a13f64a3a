/* Tests for souk/twilio.h. Signature vectors come from Twilio's helper
 * libraries (twilio-python tests/unit/test_request_validator.py); the others
 * were computed once with Python's hmac/hashlib over the decoded values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"
#include "souk/twilio.h"

#define VEC_TOKEN "12345"
#define VEC_URL "https://mycompany.com/myapp.php?foo=1&bar=2"
#define VEC_SIG "RSOYDt4T1cUTdK1PDd93/VVr8B8="
#define VEC_BODY                                                          \
    "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&"        \
    "From=%2B14158675309&To=%2B18005551212"

#define SHOP_TOKEN "s3cr3t-token"
#define SHOP_URL "https://shop.example.com/twilio/whatsapp"
#define SHOP_FROM "From=whatsapp%3A%2B14155550100"
#define SIG_HELLO "Zor3kyviuyqIlG2ssM2fSF6ZFWE=" /* Body="hello world" */

/* ---- helpers ----------------------------------------------------------- */

static twilio_form_t *parse_ok(const char *body)
{
    twilio_form_t *form = NULL;
    assert_int_equal(twilio_form_parse(body, strlen(body), &form), SOUK_OK);
    assert_non_null(form);
    return form;
}

static int parse_rc(const char *body, size_t len)
{
    twilio_form_t *form = NULL;
    int rc = twilio_form_parse(body, len, &form);
    if (rc != SOUK_OK)
        assert_null(form);
    twilio_form_free(&form);
    return rc;
}

static bool body_signed(const char *token, const char *url, const char *body,
                        const char *sig)
{
    twilio_form_t *form = parse_ok(body);
    bool ok = twilio_signature_valid(token, url, form, sig);
    twilio_form_free(&form);
    return ok;
}

static void assert_signs(const char *token, const char *url, const char *body,
                         const char *sig)
{
    char out[TWILIO_SIGNATURE_LEN + 1];
    twilio_form_t *form = parse_ok(body);
    assert_int_equal(twilio_signature_compute(token, url, form, out), SOUK_OK);
    assert_string_equal(out, sig);
    assert_true(twilio_signature_valid(token, url, form, sig));
    twilio_form_free(&form);
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* ---- vectors from the helper libraries --------------------------------- */

static void test_vector_base(void **state)
{
    (void)state;
    char out[TWILIO_SIGNATURE_LEN + 1];
    twilio_form_t *form = twilio_form_new();
    assert_int_equal(twilio_form_add(form, "CallSid", "CA1234567890ABCDE"), 0);
    assert_int_equal(twilio_form_add(form, "Digits", "1234"), 0);
    assert_int_equal(twilio_form_add(form, "From", "+14158675309"), 0);
    assert_int_equal(twilio_form_add(form, "To", "+18005551212"), 0);
    assert_int_equal(twilio_form_add(form, "Caller", "+14158675309"), 0);
    assert_int_equal(twilio_signature_compute(VEC_TOKEN, VEC_URL, form, out), 0);
    assert_string_equal(out, VEC_SIG);
    assert_true(twilio_signature_valid(VEC_TOKEN, VEC_URL, form, VEC_SIG));
    twilio_form_free(&form);
    assert_null(form);
    assert_signs(VEC_TOKEN, VEC_URL, VEC_BODY, VEC_SIG);
}

static void test_vector_https_port(void **state)
{
    (void)state;
    /* Signed with :443 added: valid against the configured URL without it. */
    assert_signs(VEC_TOKEN, "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                 VEC_BODY, "kvajT1Ptam85bY51eRf/AJRuM3w=");
    assert_true(body_signed(VEC_TOKEN, VEC_URL, VEC_BODY,
                            "kvajT1Ptam85bY51eRf/AJRuM3w="));
    /* Configured with a port, signed without it. */
    assert_true(body_signed(VEC_TOKEN,
                            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
                            VEC_BODY, VEC_SIG));
    assert_true(body_signed(VEC_TOKEN,
                            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                            VEC_BODY, VEC_SIG));
}

static void test_vector_http_port(void **state)
{
    (void)state;
    assert_signs(VEC_TOKEN, "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                 VEC_BODY, "0ZXoZLH/DfblKGATFgpif+LLRf4=");
    assert_true(body_signed(VEC_TOKEN, "http://mycompany.com/myapp.php?foo=1&bar=2",
                            VEC_BODY, "0ZXoZLH/DfblKGATFgpif+LLRf4="));
    assert_true(body_signed(VEC_TOKEN,
                            "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                            VEC_BODY, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="));
    /* The http default port is no spelling of an https URL. */
    assert_false(body_signed(VEC_TOKEN, VEC_URL, VEC_BODY,
                             "0ZXoZLH/DfblKGATFgpif+LLRf4="));
}

static void test_vector_repeated_names(void **state)
{
    (void)state;
    /* Equal values of one name count once: Digits1234Digits5678SidCA123... */
    assert_signs(VEC_TOKEN, VEC_URL,
                 "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234",
                 "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    assert_signs(VEC_TOKEN, VEC_URL,
                 "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234",
                 "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
}

static void test_vector_body_sha256(void **state)
{
    (void)state;
    static const char body[] = "{\"property\": \"value\", \"boolean\": true}";
    static const char hash[] =
        "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const char *url = VEC_URL "&bodySHA256=" "0a1ff7634d9ab3b95db5c9a2dfe9416e"
                      "41502b283a80c7cf19632632f96e6620";
    char hex[65];
    assert_int_equal(twilio_body_sha256(body, strlen(body), hex), SOUK_OK);
    assert_string_equal(hex, hash);
    assert_true(twilio_body_sha256_valid(url, body, strlen(body)));
    assert_true(twilio_signature_valid(VEC_TOKEN, url, NULL,
                                       "a9nBmqA0ju/hNViExpshrM61xv4="));
    assert_false(twilio_body_sha256_valid(url, body, strlen(body) - 1));
    assert_false(twilio_body_sha256_valid(VEC_URL, body, strlen(body)));
    assert_false(twilio_body_sha256_valid(VEC_URL "&bodySHA256=0a1f", body,
                                          strlen(body)));
    assert_false(twilio_body_sha256_valid(NULL, body, strlen(body)));
    assert_true(twilio_body_sha256_valid(
        "https://x.example/h?bodySHA256=0A1FF7634D9AB3B95DB5C9A2DFE9416E"
        "41502B283A80C7CF19632632F96E6620#rt=1", body, strlen(body)));
    assert_int_equal(twilio_body_sha256(NULL, 1, hex), SOUK_EINVAL);
    assert_int_equal(twilio_body_sha256(NULL, 0, hex), SOUK_OK);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                             "27ae41e4649b934ca495991b7852b855");
}

/* ---- signature: our own cases ------------------------------------------ */

static void test_signature_rejects_forgeries(void **state)
{
    (void)state;
    assert_false(body_signed("12346", VEC_URL, VEC_BODY, VEC_SIG));
    assert_false(body_signed(VEC_TOKEN, VEC_URL,
                             "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&"
                             "Digits=1235&From=%2B14158675309&To=%2B18005551212",
                             VEC_SIG));
    assert_false(body_signed(VEC_TOKEN, VEC_URL, VEC_BODY "&Extra=1", VEC_SIG));
    assert_false(body_signed(VEC_TOKEN, VEC_URL,
                             "CallSid=CA1234567890ABCDE&Digits=1234", VEC_SIG));
    assert_false(body_signed(VEC_TOKEN, "https://mycompany.com/myapp.php?foo=1",
                             VEC_BODY, VEC_SIG));
    assert_false(body_signed(VEC_TOKEN, "https://evil.com/myapp.php?foo=1&bar=2",
                             VEC_BODY, VEC_SIG));
    assert_false(body_signed(VEC_TOKEN, VEC_URL, VEC_BODY, ""));
    assert_false(body_signed(VEC_TOKEN, VEC_URL, VEC_BODY, "RSOYDt4T1cUTdK1PDd93/VVr8B8"));
    assert_false(body_signed(VEC_TOKEN, VEC_URL, VEC_BODY, VEC_SIG "="));
    assert_false(body_signed(VEC_TOKEN, VEC_URL, VEC_BODY, "rSOYDt4T1cUTdK1PDd93/VVr8B8="));
    assert_false(body_signed("", VEC_URL, VEC_BODY, VEC_SIG));

    twilio_form_t *form = parse_ok(VEC_BODY);
    char out[TWILIO_SIGNATURE_LEN + 1] = "unchanged";
    assert_false(twilio_signature_valid(VEC_TOKEN, VEC_URL, form, NULL));
    assert_false(twilio_signature_valid(NULL, VEC_URL, form, VEC_SIG));
    assert_false(twilio_signature_valid(VEC_TOKEN, NULL, form, VEC_SIG));
    assert_false(twilio_signature_valid(VEC_TOKEN, VEC_URL, NULL, VEC_SIG));
    assert_int_equal(twilio_signature_compute("", VEC_URL, form, out), SOUK_EINVAL);
    assert_int_equal(twilio_signature_compute(VEC_TOKEN, NULL, form, out), SOUK_EINVAL);
    assert_string_equal(out, "unchanged");
    twilio_form_free(&form);
}

static void test_signature_decoding(void **state)
{
    (void)state;
    /* '+' and %20 are both a space, and the signature covers decoded bytes. */
    assert_signs(SHOP_TOKEN, SHOP_URL, "Body=hello+world&" SHOP_FROM, SIG_HELLO);
    assert_signs(SHOP_TOKEN, SHOP_URL, "Body=hello%20world&" SHOP_FROM, SIG_HELLO);
    assert_signs(SHOP_TOKEN, SHOP_URL, SHOP_FROM "&Body=hello%20world", SIG_HELLO);
    assert_signs(SHOP_TOKEN, SHOP_URL, "Body=1%2B1&" SHOP_FROM,
                 "WbDKIG7pP1iTqgrfP4MBi0LtTaI=");
    assert_false(body_signed(SHOP_TOKEN, SHOP_URL, "Body=1+1&" SHOP_FROM,
                             "WbDKIG7pP1iTqgrfP4MBi0LtTaI="));
    assert_signs(SHOP_TOKEN, SHOP_URL, "Body=caf%C3%A9+%E2%98%95&" SHOP_FROM,
                 "mxuH+/Qo2Qm5KVGmp1n/ws5Iu8E=");
    assert_signs(SHOP_TOKEN, SHOP_URL, "Body=caf\xC3\xA9 \xE2\x98\x95&" SHOP_FROM,
                 "mxuH+/Qo2Qm5KVGmp1n/ws5Iu8E=");
    assert_signs(SHOP_TOKEN, SHOP_URL, "Body=&" SHOP_FROM,
                 "hq/4v+XLPjmMFIAl/4l8Xa9pTFk=");
    /* Byte order: CALLSID < CallSid < callSid, Reason < ReasonConferenceEnded. */
    assert_signs(VEC_TOKEN, VEC_URL,
                 "callSid=c&CallSid=b&CALLSID=a&ReasonConferenceEnded=y&Reason=x",
                 "swid1Nwck8Zs2nUmSuMsW/cJtsw=");
}

static void test_signature_fragment(void **state)
{
    (void)state;
    const char *body = "Body=hello+world&" SHOP_FROM;
    assert_signs(SHOP_TOKEN, SHOP_URL "#rt=1&ct=5000", body, SIG_HELLO);
    assert_true(body_signed(SHOP_TOKEN, SHOP_URL "#", body, SIG_HELLO));
    assert_signs(VEC_TOKEN, VEC_URL "#rt=2", VEC_BODY, VEC_SIG);
    assert_true(body_signed(VEC_TOKEN, VEC_URL "#x", VEC_BODY,
                            "kvajT1Ptam85bY51eRf/AJRuM3w="));
}

static void test_signature_url_shapes(void **state)
{
    (void)state;
    char sig[TWILIO_SIGNATURE_LEN + 1];
    twilio_form_t *form = parse_ok("A=1");
    /* Each URL validates a signature made over its other spelling. */
    static const char *const pairs[][2] = {
        { "https://user:pw@host.example/p", "https://user:pw@host.example:443/p" },
        { "https://user:pw@host.example:8443/p", "https://user:pw@host.example/p" },
        { "https://[2001:db8::1]/p", "https://[2001:db8::1]:443/p" },
        { "https://[2001:db8::1]:8443/p", "https://[2001:db8::1]/p" },
        { "https://host.example", "https://host.example:443" },
        { "HTTPS://host.example?x=1", "HTTPS://host.example:443?x=1" },
        { "http://host.example:8080?x=1", "http://host.example?x=1" },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        assert_int_equal(twilio_signature_compute("k", pairs[i][1], form, sig), 0);
        assert_true(twilio_signature_valid("k", pairs[i][0], form, sig));
    }
    /* No other spelling for schemes without a known default port. */
    assert_int_equal(twilio_signature_compute("k", "ftp://h.example:21/p", form, sig), 0);
    assert_false(twilio_signature_valid("k", "ftp://h.example/p", form, sig));
    assert_int_equal(twilio_signature_compute("k", "not a url", form, sig), 0);
    assert_true(twilio_signature_valid("k", "not a url", form, sig));
    twilio_form_free(&form);
}

/* ---- forms ------------------------------------------------------------- */

static void test_form_parse_shape(void **state)
{
    (void)state;
    twilio_form_t *form =
        parse_ok("MessageSid=SM1&Body=a=b&&Digits=5&Flag&Digits=6&NewThing=x&=e&");
    assert_int_equal(twilio_form_count(form), 7);
    assert_string_equal(twilio_form_name(form, 0), "MessageSid");
    assert_string_equal(twilio_form_value(form, 1), "a=b");
    assert_string_equal(twilio_form_name(form, 2), "Digits");
    assert_string_equal(twilio_form_value(form, 2), "5");
    assert_string_equal(twilio_form_name(form, 3), "Flag");
    assert_string_equal(twilio_form_value(form, 3), "");
    assert_string_equal(twilio_form_value(form, 4), "6");
    assert_string_equal(twilio_form_get(form, "Digits"), "5");
    assert_string_equal(twilio_form_get(form, "NewThing"), "x");
    assert_string_equal(twilio_form_get(form, ""), "e");
    assert_null(twilio_form_get(form, "digits"));
    assert_null(twilio_form_get(form, NULL));
    assert_null(twilio_form_name(form, 7));
    assert_null(twilio_form_value(form, 7));
    twilio_form_free(&form);
    assert_null(form);
    twilio_form_free(&form);
    twilio_form_free(NULL);

    assert_int_equal(twilio_form_parse(NULL, 0, &form), SOUK_OK);
    assert_int_equal(twilio_form_count(form), 0);
    twilio_form_free(&form);
    assert_int_equal(twilio_form_parse(NULL, 1, &form), SOUK_EINVAL);
    assert_int_equal(twilio_form_parse("a=1", 3, NULL), SOUK_EINVAL);
    assert_int_equal(twilio_form_count(NULL), 0);
    /* len bounds the body: bytes after it are not read. */
    assert_int_equal(twilio_form_parse("a=1&b=%zz", 3, &form), SOUK_OK);
    assert_int_equal(twilio_form_count(form), 1);
    twilio_form_free(&form);
}

static void test_form_parse_malformed_percent(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "a=%G1", "a=%1G", "a=%4", "a=%", "a%=1", "%zz=1", "a=%%41", "a=1&b=x%",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(parse_rc(bad[i], strlen(bad[i])), SOUK_EINVAL);
    twilio_form_t *form = parse_ok("a=%41%62%2b%2F%7e");
    assert_string_equal(twilio_form_get(form, "a"), "Ab+/~");
    twilio_form_free(&form);
}

static void test_form_parse_invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "a=%C3%28",          /* bad continuation */
        "a=%C0%AF",          /* overlong '/' */
        "a=%C1%BF",          /* overlong */
        "a=%E0%80%AF",       /* overlong, 3 bytes */
        "a=%F0%80%80%AF",    /* overlong, 4 bytes */
        "a=%ED%A0%80",       /* surrogate U+D800 */
        "a=%ED%BF%BF",       /* surrogate U+DFFF */
        "a=%F4%90%80%80",    /* U+110000 */
        "a=%F5%80%80%80",    /* lead byte beyond Unicode */
        "a=%E2%98",          /* truncated */
        "a=%80",             /* lone continuation */
        "a=\xFF",            /* raw invalid byte */
        "caf%E9=1",          /* Latin-1 in a name */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(parse_rc(bad[i], strlen(bad[i])), SOUK_EINVAL);
    twilio_form_t *form = parse_ok("a=%F4%8F%BF%BF&b=%EF%BF%BF&c=%F0%9F%98%80&d=%ED%9F%BF");
    assert_string_equal(twilio_form_get(form, "a"), "\xF4\x8F\xBF\xBF");
    assert_string_equal(twilio_form_get(form, "c"), "\xF0\x9F\x98\x80");
    twilio_form_free(&form);
}

static void test_form_parse_nul(void **state)
{
    (void)state;
    assert_int_equal(parse_rc("a=%00", 5), SOUK_EINVAL);
    assert_int_equal(parse_rc("a%00=1", 6), SOUK_EINVAL);
    assert_int_equal(parse_rc("a=1\0b", 5), SOUK_EINVAL);
    assert_int_equal(parse_rc("a=1&\0=2", 7), SOUK_EINVAL);
}

static char *numbered_body(size_t n)
{
    char *body = malloc(n * 16 + 1);
    size_t len = 0;
    assert_non_null(body);
    body[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(body + len, "%sp%zu=%zu", i ? "&" : "", i, i);
    return body;
}

static void test_form_parameter_cap(void **state)
{
    (void)state;
    char *body = numbered_body(TWILIO_FORM_MAX_PARAMS);
    twilio_form_t *form = parse_ok(body);
    assert_int_equal(twilio_form_count(form), TWILIO_FORM_MAX_PARAMS);
    assert_string_equal(twilio_form_get(form, "p511"), "511");
    assert_int_equal(twilio_form_add(form, "one", "more"), SOUK_ETOOBIG);
    assert_int_equal(twilio_form_count(form), TWILIO_FORM_MAX_PARAMS);
    twilio_form_free(&form);
    free(body);

    body = numbered_body(TWILIO_FORM_MAX_PARAMS + 1);
    assert_int_equal(parse_rc(body, strlen(body)), SOUK_ETOOBIG);
    free(body);
    /* Empty pairs are not parameters. */
    assert_int_equal(parse_rc("&&&&&&", 6), SOUK_OK);
}

static void test_form_add_encode(void **state)
{
    (void)state;
    twilio_form_t *form = twilio_form_new();
    char *body = NULL;
    assert_int_equal(twilio_form_add(form, "Body", "caf\xC3\xA9 \xE2\x98\x95 1+1"), 0);
    assert_int_equal(twilio_form_add(form, "a&b", "c=d%"), 0);
    assert_int_equal(twilio_form_add(form, "Body", ""), 0);
    assert_int_equal(twilio_form_add(form, "x", "-._~*"), 0);
    assert_int_equal(twilio_form_add(form, "bad", "\xC0\xAF"), SOUK_EINVAL);
    assert_int_equal(twilio_form_add(form, NULL, "v"), SOUK_EINVAL);
    assert_int_equal(twilio_form_add(NULL, "n", "v"), SOUK_EINVAL);
    assert_int_equal(twilio_form_encode(form, &body), SOUK_OK);
    assert_string_equal(body, "Body=caf%C3%A9+%E2%98%95+1%2B1&a%26b=c%3Dd%25&"
                              "Body=&x=-._~%2A");
    twilio_form_t *back = parse_ok(body);
    assert_int_equal(twilio_form_count(back), twilio_form_count(form));
    for (size_t i = 0; i < twilio_form_count(form); i++) {
        assert_string_equal(twilio_form_name(back, i), twilio_form_name(form, i));
        assert_string_equal(twilio_form_value(back, i), twilio_form_value(form, i));
    }
    free(body);
    twilio_form_free(&back);
    twilio_form_free(&form);

    form = twilio_form_new();
    assert_int_equal(twilio_form_encode(form, &body), SOUK_OK);
    assert_string_equal(body, "");
    free(body);
    assert_int_equal(twilio_form_encode(NULL, &body), SOUK_EINVAL);
    twilio_form_free(&form);
}

/* ---- TwiML ------------------------------------------------------------- */

static void test_twiml(void **state)
{
    (void)state;
    char *s = twilio_xml_escape("a & b < c > d \"e\" 'f' caf\xC3\xA9 \xE2\x98\x95");
    assert_string_equal(s, "a &amp; b &lt; c &gt; d &quot;e&quot; &apos;f&apos; "
                           "caf\xC3\xA9 \xE2\x98\x95");
    free(s);
    s = twilio_twiml_message("Total: 5 < 7 & \"ok\"\nBye");
    assert_string_equal(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>"
                           "<Message>Total: 5 &lt; 7 &amp; &quot;ok&quot;\nBye"
                           "</Message></Response>");
    free(s);
    s = twilio_twiml_message("");
    assert_string_equal(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>"
                           "<Message></Message></Response>");
    free(s);
    s = twilio_twiml_empty();
    assert_string_equal(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>");
    free(s);
    /* Characters XML forbids would make Twilio reject the whole reply. */
    s = twilio_xml_escape("a\x01\x1F\tb\r\n\xEF\xBF\xBE\xEF\xBF\xBFz\xFF!");
    assert_string_equal(s, "a\tb\r\nz\xEF\xBF\xBD!");
    free(s);
    s = twilio_xml_escape("");
    assert_string_equal(s, "");
    free(s);
    assert_null(twilio_xml_escape(NULL));
    assert_null(twilio_twiml_message(NULL));
}

/* ---- identities and logs ----------------------------------------------- */

static void test_waid_matches_from(void **state)
{
    (void)state;
    assert_true(twilio_waid_matches_from("14155550100", "whatsapp:+14155550100"));
    assert_true(twilio_waid_matches_from("1", "whatsapp:+1"));
    assert_true(twilio_waid_matches_from("12345678901234567890",
                                         "whatsapp:+12345678901234567890"));
    assert_false(twilio_waid_matches_from("123456789012345678901",
                                          "whatsapp:+123456789012345678901"));
    assert_false(twilio_waid_matches_from("14155550101", "whatsapp:+14155550100"));
    assert_false(twilio_waid_matches_from("1415555010", "whatsapp:+14155550100"));
    assert_false(twilio_waid_matches_from("14155550100", "whatsapp:14155550100"));
    assert_false(twilio_waid_matches_from("14155550100", "+14155550100"));
    assert_false(twilio_waid_matches_from("14155550100", "sms:+14155550100"));
    assert_false(twilio_waid_matches_from("14155550100", "WhatsApp:+14155550100"));
    assert_false(twilio_waid_matches_from("14155550100", "whatsapp:+14155550100 "));
    assert_false(twilio_waid_matches_from("+14155550100", "whatsapp:++14155550100"));
    assert_false(twilio_waid_matches_from("1415a550100", "whatsapp:+1415a550100"));
    assert_false(twilio_waid_matches_from("", "whatsapp:+"));
    assert_false(twilio_waid_matches_from(NULL, "whatsapp:+1"));
    assert_false(twilio_waid_matches_from("1", NULL));
}

static void assert_masked(const char *in, const char *want)
{
    char out[64];
    twilio_mask_phone(in, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_mask_phone(void **state)
{
    (void)state;
    assert_masked("whatsapp:+14155550100", "whatsapp:+141******00");
    assert_masked("14155550100", "141******00");
    assert_masked("+44 20 7946 0958", "+44 2* **** **58");
    assert_masked("+1234", "+**34");
    assert_masked("12345", "***45");
    assert_masked("123", "1**");
    assert_masked("", "");
    assert_masked(NULL, "");
    assert_masked("whatsapp:", "whatsapp:");

    char small[8] = "xxxxxxx";
    twilio_mask_phone("whatsapp:+14155550100", small, sizeof small);
    assert_string_equal(small, "whatsap");
    twilio_mask_phone("14155550100", small, 1);
    assert_string_equal(small, "");
    small[0] = 'x';
    twilio_mask_phone("14155550100", small, 0);
    assert_int_equal(small[0], 'x');

    /* Never more than 5 digits, never more than half of them. */
    char in[40], out[40];
    for (size_t n = 0; n < 35; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (char)('1' + i % 9);
        in[n] = '\0';
        twilio_mask_phone(in, out, sizeof out);
        size_t shown = 0;
        for (size_t i = 0; i < n; i++)
            shown += out[i] != '*';
        assert_int_equal(strlen(out), n);
        assert_true(shown <= 5 && shown * 2 <= n);
    }
}

/* ---- splitting --------------------------------------------------------- */

static void assert_split(const char *text, size_t max, size_t n, ...)
{
    char **parts = NULL;
    size_t nparts = 99;
    va_list ap;
    assert_int_equal(twilio_split_body(text, max, &parts, &nparts), SOUK_OK);
    assert_int_equal(nparts, n);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(parts[i], va_arg(ap, const char *));
    va_end(ap);
    twilio_split_free(&parts, nparts);
    assert_null(parts);
}

static void test_split_boundaries(void **state)
{
    (void)state;
    assert_split("  hello world \n", 1600, 1, "hello world");
    assert_split("", 10, 0);
    assert_split(" \n\n \t", 10, 0);
    assert_split("First line\nsecond line\n\nNext para", 30, 2,
                 "First line\nsecond line", "Next para");
    assert_split("one two\nthree four five", 16, 2, "one two", "three four five");
    assert_split("one two three four", 9, 3, "one two", "three", "four");
    assert_split("abcdefghij", 4, 3, "abcd", "efgh", "ij");
    assert_split("aaaa bbbbbbbbbb c", 5, 4, "aaaa", "bbbbb", "bbbbb", "c");
    /* A paragraph break wins over a later line break. */
    assert_split("a\n\nb\nc d e", 9, 2, "a", "b\nc d e");
    assert_split("para\n\n\n\n  next", 6, 2, "para", "next");
}

static void test_split_exact_limits(void **state)
{
    (void)state;
    assert_split("abcdef", 6, 1, "abcdef");
    assert_split("abcdefg", 6, 2, "abcdef", "g");
    assert_split("abc def", 7, 1, "abc def");
    assert_split("abc def", 6, 2, "abc", "def");
    assert_split("abcd ef", 4, 2, "abcd", "ef");   /* space right at the limit */
    assert_split("abcd\n\nef", 4, 2, "abcd", "ef"); /* paragraph at the limit */
    assert_split("abcde f", 4, 2, "abcd", "e f");
    assert_split("a b", 1, 2, "a", "b");
}

static void test_split_multibyte(void **state)
{
    (void)state;
    /* Limits count code points, and a hard cut never splits one. */
    assert_split("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 2, 3,
                 "\xC3\xA9\xC3\xA9", "\xC3\xA9\xC3\xA9", "\xC3\xA9");
    assert_split("\xE2\x98\x95\xF0\x9F\x98\x80\xE2\x98\x95", 2, 2,
                 "\xE2\x98\x95\xF0\x9F\x98\x80", "\xE2\x98\x95");
    assert_split("caf\xC3\xA9 caf\xC3\xA9", 4, 2, "caf\xC3\xA9", "caf\xC3\xA9");
    assert_split("caf\xC3\xA9 caf\xC3\xA9", 9, 1, "caf\xC3\xA9 caf\xC3\xA9");
}

static void test_split_rejects(void **state)
{
    (void)state;
    char **parts = NULL;
    size_t n = 7;
    assert_int_equal(twilio_split_body(NULL, 5, &parts, &n), SOUK_EINVAL);
    assert_int_equal(twilio_split_body("abc", 0, &parts, &n), SOUK_EINVAL);
    assert_int_equal(twilio_split_body("ab\xC3", 5, &parts, &n), SOUK_EINVAL);
    assert_int_equal(twilio_split_body("abc", 5, NULL, &n), SOUK_EINVAL);
    assert_int_equal(twilio_split_body("abc", 5, &parts, NULL), SOUK_EINVAL);
    assert_null(parts);
    assert_int_equal(n, 7);
    twilio_split_free(NULL, 0);
    twilio_split_free(&parts, 0);
}

/* Words of text in order, joined by single spaces. */
static char *words_of(const char *text)
{
    char *out = malloc(strlen(text) + 1);
    size_t j = 0;
    assert_non_null(out);
    for (const char *p = text; *p;) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (*p && j)
            out[j++] = ' ';
        while (*p && *p != ' ' && *p != '\n')
            out[j++] = *p++;
    }
    out[j] = '\0';
    return out;
}

static char *random_text(unsigned *seed, size_t words, size_t max_word)
{
    static const char *const glyphs[] = { "a", "b", "z", "\xC3\xA9", "\xE2\x98\x95",
                                          "\xF0\x9F\x98\x80" };
    static const char *const seps[] = { " ", " ", " ", "\n", "\n\n", "  " };
    char *text = malloc(words * (max_word * 4 + 2) + 1);
    size_t len = 0;
    assert_non_null(text);
    for (size_t w = 0; w < words; w++) {
        size_t wl = 1 + (size_t)rand_r(seed) % max_word;
        for (size_t i = 0; i < wl; i++)
            len += (size_t)sprintf(text + len, "%s", glyphs[rand_r(seed) % 6]);
        len += (size_t)sprintf(text + len, "%s", seps[rand_r(seed) % 6]);
    }
    text[len] = '\0';
    return text;
}

static void check_split_properties(const char *text, size_t max, size_t max_word)
{
    char **parts = NULL;
    size_t n = 0;
    assert_int_equal(twilio_split_body(text, max, &parts, &n), SOUK_OK);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(parts[i]) + 1;
    char *joined = calloc(1, total + 1);
    assert_non_null(joined);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(parts[i]);
        assert_true(len > 0 && utf8_chars(parts[i]) <= max);
        assert_false(parts[i][0] == ' ' || parts[i][0] == '\n');
        assert_false(parts[i][len - 1] == ' ' || parts[i][len - 1] == '\n');
        strcat(joined, parts[i]);
        /* Parts end between words unless a word is longer than the limit. */
        if (max_word <= max)
            strcat(joined, " ");
    }
    char *want = words_of(text), *got = words_of(joined);
    if (max_word > max) {
        /* Only whitespace positions may differ; compare without it. */
        size_t j = 0;
        for (size_t i = 0; want[i]; i++)
            if (want[i] != ' ')
                want[j++] = want[i];
        want[j] = '\0';
        j = 0;
        for (size_t i = 0; got[i]; i++)
            if (got[i] != ' ')
                got[j++] = got[i];
        got[j] = '\0';
    }
    assert_string_equal(got, want);
    free(want);
    free(got);
    free(joined);
    twilio_split_free(&parts, n);
}

static void test_split_properties(void **state)
{
    (void)state;
    unsigned seed = 12345;
    static const size_t maxes[] = { 1, 2, 3, 7, 16, 40, 160, 1600 };
    for (size_t round = 0; round < 40; round++) {
        size_t max_word = 1 + round % 12;
        char *text = random_text(&seed, 20 + round * 10, max_word);
        for (size_t m = 0; m < sizeof maxes / sizeof *maxes; m++)
            check_split_properties(text, maxes[m], max_word);
        free(text);
    }
}

static void test_split_twilio_limit(void **state)
{
    (void)state;
    char text[5000];
    size_t len = 0;
    for (size_t i = 0; len < 4000; i++)
        len += (size_t)sprintf(text + len, "word%zu%s", i, i % 50 == 49 ? "\n\n" : " ");
    char **parts = NULL;
    size_t n = 0;
    assert_int_equal(twilio_split_body(text, TWILIO_BODY_MAX_CHARS, &parts, &n), 0);
    assert_true(n >= 3);
    for (size_t i = 0; i < n; i++) {
        assert_true(utf8_chars(parts[i]) <= TWILIO_BODY_MAX_CHARS);
        /* Every part but the last ends a paragraph: word 49, 99, 149, ... */
        if (i + 1 < n)
            assert_int_equal(strtoul(strrchr(parts[i], 'd') + 1, NULL, 10) % 50, 49);
    }
    assert_true(strncmp(parts[0], "word0 word1", 11) == 0);
    twilio_split_free(&parts, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_base),
        cmocka_unit_test(test_vector_https_port),
        cmocka_unit_test(test_vector_http_port),
        cmocka_unit_test(test_vector_repeated_names),
        cmocka_unit_test(test_vector_body_sha256),
        cmocka_unit_test(test_signature_rejects_forgeries),
        cmocka_unit_test(test_signature_decoding),
        cmocka_unit_test(test_signature_fragment),
        cmocka_unit_test(test_signature_url_shapes),
        cmocka_unit_test(test_form_parse_shape),
        cmocka_unit_test(test_form_parse_malformed_percent),
        cmocka_unit_test(test_form_parse_invalid_utf8),
        cmocka_unit_test(test_form_parse_nul),
        cmocka_unit_test(test_form_parameter_cap),
        cmocka_unit_test(test_form_add_encode),
        cmocka_unit_test(test_twiml),
        cmocka_unit_test(test_waid_matches_from),
        cmocka_unit_test(test_mask_phone),
        cmocka_unit_test(test_split_boundaries),
        cmocka_unit_test(test_split_exact_limits),
        cmocka_unit_test(test_split_multibyte),
        cmocka_unit_test(test_split_rejects),
        cmocka_unit_test(test_split_properties),
        cmocka_unit_test(test_split_twilio_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
