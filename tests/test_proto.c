/* Protocol codec: a round trip for every message type (expanded from the
 * schema, so a new type is covered without touching this file) and the
 * rejection of malformed, truncated, oversized and wrong-version frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"
#include "souk/proto.h"

/* Every field gets a value derived from its position, so a field swapped or
 * dropped by the codec shows up as a mismatch. */
static void fill_u64(uint64_t *v, int i) { *v = 1000003u * (uint64_t)(i + 1); }
static void fill_i64(int64_t *v, int i) { *v = -7 * (int64_t)(i + 1); }
static void fill_bool(bool *v, int i) { *v = i % 2 == 0; }
static void fill_str(char **v, int i)
{
    char buf[64];
    snprintf(buf, sizeof buf, "field-%d café ☕", i);
    *v = strdup(buf);
}

static void check_u64(const uint64_t *a, const uint64_t *b) { assert_true(*a == *b); }
static void check_i64(const int64_t *a, const int64_t *b) { assert_true(*a == *b); }
static void check_bool(const bool *a, const bool *b) { assert_int_equal(*a, *b); }
static void check_str(char *const *a, char *const *b) { assert_string_equal(*a, *b); }

#define FILL(kind, field, cap) fill_##kind(&f->field, i++);
#define CHECK(kind, field, cap) check_##kind(&fa->field, &fb->field);

static void fill(souk_msg_t *m, souk_msg_type_t type)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    int i = 0;
    switch (type) {
#define X(ENUM, name, doc)                                                   \
    case SOUK_MSG_##ENUM: {                                                  \
        souk_##name##_t *f = &m->name;                                       \
        SOUK_FIELDS_##name(FILL) break;                                      \
    }
        SOUK_MESSAGES(X)
#undef X
    default: fail();
    }
    (void)i;
}

static void check_equal(const souk_msg_t *a, const souk_msg_t *b)
{
    assert_int_equal(a->type, b->type);
    switch (a->type) {
#define X(ENUM, name, doc)                                                   \
    case SOUK_MSG_##ENUM: {                                                  \
        const souk_##name##_t *fa = &a->name, *fb = &b->name;                \
        SOUK_FIELDS_##name(CHECK) break;                                     \
    }
        SOUK_MESSAGES(X)
#undef X
    default: fail();
    }
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
    for (int t = SOUK_MSG_NONE + 1; t < SOUK_MSG_COUNT; t++) {
        souk_msg_t m, back;
        fill(&m, (souk_msg_type_t)t);
        char *buf;
        size_t len;
        assert_int_equal(souk_msg_encode(&m, &buf, &len), SOUK_OK);
        char err[128];
        assert_int_equal(souk_msg_decode(buf, len, &back, err, sizeof err), SOUK_OK);
        check_equal(&m, &back);
        assert_string_not_equal(souk_msg_name((souk_msg_type_t)t), "?");

        /* every proper prefix is truncated, never a crash or a success */
        for (size_t cut = 0; cut < len; cut++) {
            souk_msg_t tmp;
            assert_int_not_equal(souk_msg_decode(buf, cut, &tmp, NULL, 0), SOUK_OK);
        }
        free(buf);
        souk_msg_clear(&m);
        souk_msg_clear(&back);
    }
}

/* Packs [version, type, ...] with the given element writer. */
typedef void (*writer_fn)(msgpack_packer *pk);

static int decode_packed(writer_fn w, souk_msg_t *out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    w(&pk);
    char err[128] = "";
    int rc = souk_msg_decode(sb.data, sb.size, out, err, sizeof err);
    if (rc != SOUK_OK)
        assert_true(err[0] != '\0'); /* a rejection always says why */
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void w_ready_ok(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION);
    msgpack_pack_uint32(pk, SOUK_MSG_READY);
    pack_str(pk, "tool-0");
}
static void w_wrong_version(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION + 1);
    msgpack_pack_uint32(pk, SOUK_MSG_READY);
    pack_str(pk, "tool-0");
}
static void w_unknown_type(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION);
    msgpack_pack_uint32(pk, SOUK_MSG_COUNT + 5);
    pack_str(pk, "x");
}
static void w_missing_field(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION);
    msgpack_pack_uint32(pk, SOUK_MSG_HELLO);
    pack_str(pk, "gateway");
    pack_str(pk, "gateway"); /* pid missing */
}
static void w_extra_field(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION);
    msgpack_pack_uint32(pk, SOUK_MSG_READY);
    pack_str(pk, "a");
    pack_str(pk, "b");
}
static void w_mistyped(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION);
    msgpack_pack_uint32(pk, SOUK_MSG_READY);
    msgpack_pack_int32(pk, -5);
}
static void w_nested(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION);
    msgpack_pack_uint32(pk, SOUK_MSG_READY);
    msgpack_pack_map(pk, 1);
    pack_str(pk, "k");
    pack_str(pk, "v");
}
static void w_not_array(msgpack_packer *pk) { pack_str(pk, "hello"); }
static void w_bad_utf8(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION);
    msgpack_pack_uint32(pk, SOUK_MSG_READY);
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "\xC0\xAF!", 3); /* overlong '/' */
}
static void w_embedded_nul(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION);
    msgpack_pack_uint32(pk, SOUK_MSG_READY);
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "a\0b", 3);
}
static void w_over_cap(msgpack_packer *pk)
{
    char big[SOUK_CAP_NAME + 2];
    memset(big, 'n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint32(pk, SOUK_PROTO_VERSION);
    msgpack_pack_uint32(pk, SOUK_MSG_READY);
    pack_str(pk, big);
}

static void test_rejections(void **state)
{
    (void)state;
    souk_msg_t m;
    assert_int_equal(decode_packed(w_ready_ok, &m), SOUK_OK);
    assert_string_equal(m.ready.name, "tool-0");
    souk_msg_clear(&m);
    assert_int_equal(decode_packed(w_wrong_version, &m), SOUK_EVERSION);
    assert_int_equal(decode_packed(w_unknown_type, &m), SOUK_ETYPE);
    assert_int_equal(decode_packed(w_missing_field, &m), SOUK_EPROTO);
    assert_int_equal(decode_packed(w_extra_field, &m), SOUK_EPROTO);
    assert_int_equal(decode_packed(w_mistyped, &m), SOUK_EPROTO);
    assert_int_equal(decode_packed(w_nested, &m), SOUK_EPROTO);
    assert_int_equal(decode_packed(w_not_array, &m), SOUK_EPROTO);
    assert_int_equal(decode_packed(w_bad_utf8, &m), SOUK_EPROTO);
    assert_int_equal(decode_packed(w_embedded_nul, &m), SOUK_EPROTO);
    assert_int_equal(decode_packed(w_over_cap, &m), SOUK_EPROTO);
    assert_int_equal(m.type, SOUK_MSG_NONE);
}

/* Found by the fuzzer: an empty string decodes (msgpack-c gives it no
 * pointer) without touching memory. */
static void test_empty_string(void **state)
{
    (void)state;
    const unsigned char frame[] = { 0x93, 0x01, SOUK_MSG_SPAWN_SESSION, 0xa0 };
    souk_msg_t m;
    assert_int_equal(souk_msg_decode(frame, sizeof frame, &m, NULL, 0), SOUK_OK);
    assert_string_equal(m.spawn_session.waid, "");
    souk_msg_clear(&m);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    souk_msg_t m = { .type = SOUK_MSG_READY };
    m.ready.name = "x";
    char *buf;
    size_t len;
    assert_int_equal(souk_msg_encode(&m, &buf, &len), SOUK_OK);
    char *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = (char)0xc0; /* a whole msgpack nil after the message */
    souk_msg_t out;
    assert_int_equal(souk_msg_decode(longer, len + 1, &out, NULL, 0), SOUK_EPROTO);
    free(longer);
    free(buf);
}

static void test_oversized(void **state)
{
    (void)state;
    size_t len = SOUK_FRAME_MAX + 1;
    char *big = calloc(1, len);
    souk_msg_t out;
    assert_int_equal(souk_msg_decode(big, len, &out, NULL, 0), SOUK_ETOOBIG);
    free(big);

    /* a body over its cap is refused at encode time as well */
    souk_msg_t m = { .type = SOUK_MSG_STATUS_REP };
    m.status_rep.json = calloc(1, SOUK_CAP_DOC + 2);
    memset(m.status_rep.json, 'a', SOUK_CAP_DOC + 1);
    char *buf;
    size_t n;
    assert_int_equal(souk_msg_encode(&m, &buf, &n), SOUK_EINVAL);
    free(m.status_rep.json);
}

/* Container headers that claim far more elements than the frame holds must
 * be refused before msgpack-c allocates for them. */
static void test_hostile_counts(void **state)
{
    (void)state;
    const unsigned char huge_map[] = { 0xdf, 0x10, 0x00, 0x00, 0x00 };
    const unsigned char huge_array[] = { 0x93, 0x01, 0x02, 0xdd, 0x7f, 0xff, 0xff, 0xff };
    const unsigned char huge_str[] = { 0x93, 0x01, 0x02, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a' };
    const unsigned char deep[] = { 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
                                   0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0xc0 };
    const unsigned char reserved[] = { 0x93, 0x01, 0x02, 0xc1 };
    souk_msg_t out;
    assert_int_equal(souk_msg_decode(huge_map, sizeof huge_map, &out, NULL, 0), SOUK_EPROTO);
    assert_int_equal(souk_msg_decode(huge_array, sizeof huge_array, &out, NULL, 0), SOUK_EPROTO);
    assert_int_equal(souk_msg_decode(huge_str, sizeof huge_str, &out, NULL, 0), SOUK_EPROTO);
    assert_int_equal(souk_msg_decode(deep, sizeof deep, &out, NULL, 0), SOUK_EPROTO);
    assert_int_equal(souk_msg_decode(reserved, sizeof reserved, &out, NULL, 0), SOUK_EPROTO);
    assert_int_equal(souk_msg_decode("", 0, &out, NULL, 0), SOUK_EPROTO);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(souk_utf8_valid("plain", 5));
    assert_true(souk_utf8_valid("caf\xC3\xA9", 5));
    assert_true(souk_utf8_valid("\xF0\x9F\x91\x8D", 4));
    assert_false(souk_utf8_valid("\xED\xA0\x80", 3));     /* surrogate */
    assert_false(souk_utf8_valid("\xF4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(souk_utf8_valid("\xE0\x80\xAF", 3));     /* overlong */
    assert_false(souk_utf8_valid("\xC3", 1));             /* truncated */
    assert_false(souk_utf8_valid("a\0b", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_empty_string),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_hostile_counts),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
