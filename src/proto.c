/* The bus codec, expanded from the tables in include/souk/proto.h.
 *
 * Encoding uses msgpack-c's packer. Decoding first walks the frame with a
 * small structural scanner that checks every container's element count
 * against the bytes left: msgpack-c allocates a container's elements as soon
 * as it reads the header, so a 5-byte header claiming 2^28 entries would
 * otherwise cost gigabytes. Only a frame that passes is handed to
 * msgpack_unpack_next. */
#include "souk/proto.h"
#include "souk/error.h"

#include <czmq.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_DEPTH_MAX 16

/* ---- per-kind encode, decode and free --------------------------------- */

static int enc_u64(msgpack_packer *pk, const uint64_t *v, size_t cap)
{
    (void)cap;
    return msgpack_pack_uint64(pk, *v) ? SOUK_ENOMEM : SOUK_OK;
}

static int enc_i64(msgpack_packer *pk, const int64_t *v, size_t cap)
{
    (void)cap;
    return msgpack_pack_int64(pk, *v) ? SOUK_ENOMEM : SOUK_OK;
}

static int enc_bool(msgpack_packer *pk, const bool *v, size_t cap)
{
    (void)cap;
    return (*v ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) ? SOUK_ENOMEM : SOUK_OK;
}

static int enc_str(msgpack_packer *pk, char *const *v, size_t cap)
{
    const char *s = *v ? *v : "";
    size_t n = strlen(s);
    if (n > cap || !souk_utf8_valid(s, n))
        return SOUK_EINVAL;
    if (msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n))
        return SOUK_ENOMEM;
    return SOUK_OK;
}

static int dec_u64(const msgpack_object *o, uint64_t *v, size_t cap)
{
    (void)cap;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return SOUK_EPROTO;
    *v = o->via.u64;
    return SOUK_OK;
}

static int dec_i64(const msgpack_object *o, int64_t *v, size_t cap)
{
    (void)cap;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *v = o->via.i64;
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        *v = (int64_t)o->via.u64;
    else
        return SOUK_EPROTO;
    return SOUK_OK;
}

static int dec_bool(const msgpack_object *o, bool *v, size_t cap)
{
    (void)cap;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return SOUK_EPROTO;
    *v = o->via.boolean;
    return SOUK_OK;
}

static int dec_str(const msgpack_object *o, char **v, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return SOUK_EPROTO;
    size_t n = o->via.str.size;
    if (n > cap || !souk_utf8_valid(o->via.str.ptr, n))
        return SOUK_EPROTO;
    char *s = malloc(n + 1);
    if (!s)
        return SOUK_ENOMEM;
    if (n) /* an empty string may come with no pointer at all */
        memcpy(s, o->via.str.ptr, n);
    s[n] = '\0';
    *v = s;
    return SOUK_OK;
}

static void free_u64(uint64_t *v) { (void)v; }
static void free_i64(int64_t *v) { (void)v; }
static void free_bool(bool *v) { (void)v; }
static void free_str(char **v) { free(*v); *v = NULL; }

/* ---- per-type functions, expanded from the schema --------------------- */

#define COUNT_FIELD(kind, field, cap) + 1
#define NAME_FIELD(kind, field, cap) #field,
#define ENC_FIELD(kind, field, cap)                                          \
    if ((rc = enc_##kind(pk, &s->field, cap)) != SOUK_OK) {                  \
        *bad = #field;                                                       \
        return rc;                                                           \
    }
#define DEC_FIELD(kind, field, cap)                                          \
    if ((rc = dec_##kind(&o[i], &s->field, cap)) != SOUK_OK) {               \
        *bad = i;                                                            \
        return rc;                                                           \
    }                                                                        \
    i++;
#define FREE_FIELD(kind, field, cap) free_##kind(&s->field);

#define X(ENUM, name, doc)                                                   \
    static int enc_##name(msgpack_packer *pk, const souk_##name##_t *s,      \
                          const char **bad)                                  \
    {                                                                        \
        int rc;                                                              \
        SOUK_FIELDS_##name(ENC_FIELD) return SOUK_OK;                        \
    }                                                                        \
    static int dec_##name(const msgpack_object *o, souk_##name##_t *s,       \
                          size_t *bad)                                       \
    {                                                                        \
        int rc;                                                              \
        size_t i = 0;                                                        \
        SOUK_FIELDS_##name(DEC_FIELD) return SOUK_OK;                        \
    }                                                                        \
    static void free_##name(souk_##name##_t *s) { SOUK_FIELDS_##name(FREE_FIELD) } \
    static const char *const names_##name[] = { SOUK_FIELDS_##name(NAME_FIELD) };
SOUK_MESSAGES(X)
#undef X

typedef struct {
    const char *name;
    size_t nfields;
    const char *const *field_names;
} type_info_t;

static const type_info_t s_types[SOUK_MSG_COUNT] = {
#define X(ENUM, name, doc)                                                   \
    [SOUK_MSG_##ENUM] = { #name, 0 SOUK_FIELDS_##name(COUNT_FIELD), names_##name },
    SOUK_MESSAGES(X)
#undef X
};

const char *souk_msg_name(souk_msg_type_t type)
{
    if (type <= SOUK_MSG_NONE || type >= SOUK_MSG_COUNT)
        return "?";
    return s_types[type].name;
}

/* ---- UTF-8 ------------------------------------------------------------ */

bool souk_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
        else return false;
        if (i + n >= len)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* overlong, surrogate, or beyond Unicode */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF
            || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

/* ---- encode ----------------------------------------------------------- */

int souk_msg_encode(const souk_msg_t *m, char **buf, size_t *len)
{
    if (!m || !buf || !len || m->type <= SOUK_MSG_NONE || m->type >= SOUK_MSG_COUNT)
        return SOUK_EINVAL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    const char *bad = NULL;
    int rc = SOUK_OK;
    if (msgpack_pack_array(&pk, 2 + s_types[m->type].nfields)
        || msgpack_pack_uint32(&pk, SOUK_PROTO_VERSION)
        || msgpack_pack_uint32(&pk, (uint32_t)m->type))
        rc = SOUK_ENOMEM;
    else switch (m->type) {
#define X(ENUM, name, doc)                                                   \
    case SOUK_MSG_##ENUM: rc = enc_##name(&pk, &m->name, &bad); break;
        SOUK_MESSAGES(X)
#undef X
    default: rc = SOUK_EINVAL;
    }
    if (rc == SOUK_ENOMEM || rc == SOUK_OK) {
        if (rc == SOUK_OK && sb.size > SOUK_FRAME_MAX)
            rc = SOUK_ETOOBIG;
    } else {
        rc = SOUK_EINVAL;
    }
    if (rc != SOUK_OK) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    *buf = sb.data;
    *len = sb.size;
    return SOUK_OK;
}

/* ---- decode ----------------------------------------------------------- */

/* Bytes of the big-endian length that follows a msgpack header byte. */
static int scan_header(const unsigned char *p, size_t left, size_t *hdr,
                       uint64_t *payload, uint64_t *children)
{
    unsigned c = p[0];
    size_t extra = 0;
    *payload = 0;
    *children = 0;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) { *hdr = 1; return 0; }
    if ((c & 0xf0) == 0x80) { *hdr = 1; *children = 2 * (uint64_t)(c & 0x0f); return 0; }
    if ((c & 0xf0) == 0x90) { *hdr = 1; *children = c & 0x0f; return 0; }
    if ((c & 0xe0) == 0xa0) { *hdr = 1; *payload = c & 0x1f; return 0; }
    switch (c) {
    case 0xcc: case 0xd0: *hdr = 2; return left < 2 ? -1 : 0;
    case 0xcd: case 0xd1: *hdr = 3; return left < 3 ? -1 : 0;
    case 0xca: case 0xce: case 0xd2: *hdr = 5; return left < 5 ? -1 : 0;
    case 0xcb: case 0xcf: case 0xd3: *hdr = 9; return left < 9 ? -1 : 0;
    case 0xd4: *hdr = 3; return left < 3 ? -1 : 0;
    case 0xd5: *hdr = 4; return left < 4 ? -1 : 0;
    case 0xd6: *hdr = 6; return left < 6 ? -1 : 0;
    case 0xd7: *hdr = 10; return left < 10 ? -1 : 0;
    case 0xd8: *hdr = 18; return left < 18 ? -1 : 0;
    case 0xc4: case 0xd9: extra = 1; break;
    case 0xc5: case 0xda: extra = 2; break;
    case 0xc6: case 0xdb: extra = 4; break;
    case 0xc7: extra = 1; break;
    case 0xc8: extra = 2; break;
    case 0xc9: extra = 4; break;
    case 0xdc: case 0xde: extra = 2; break;
    case 0xdd: case 0xdf: extra = 4; break;
    default: return -1; /* 0xc1 is never used */
    }
    if (left < 1 + extra)
        return -1;
    uint64_t n = 0;
    for (size_t k = 0; k < extra; k++)
        n = (n << 8) | p[1 + k];
    *hdr = 1 + extra;
    if (c >= 0xc7 && c <= 0xc9) { /* ext: type byte, then payload */
        *hdr += 1;
        *payload = n;
        return left < *hdr ? -1 : 0;
    }
    if (c == 0xdc || c == 0xdd)
        *children = n;
    else if (c == 0xde || c == 0xdf)
        *children = 2 * n;
    else
        *payload = n;
    return 0;
}

/* Walks one complete msgpack object; every declared element must have at
 * least one byte left, so no count can outgrow the frame. Returns the
 * object's length, or 0 when malformed or truncated. */
static size_t scan_object(const unsigned char *buf, size_t len)
{
    uint64_t pending[SCAN_DEPTH_MAX];
    int depth = 0;
    size_t off = 0;
    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        if (off >= len)
            return 0;
        size_t hdr;
        uint64_t payload, children;
        if (scan_header(buf + off, len - off, &hdr, &payload, &children) < 0)
            return 0;
        if (payload > len - off - hdr)
            return 0;
        off += hdr + (size_t)payload;
        pending[depth]--;
        if (children) {
            if (children > len - off || depth + 1 >= SCAN_DEPTH_MAX)
                return 0;
            pending[++depth] = children;
        }
    }
    return off;
}

static int decode_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int decode_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int decode_fields(const msgpack_object *o, souk_msg_t *out, size_t *bad)
{
    switch (out->type) {
#define X(ENUM, name, doc)                                                   \
    case SOUK_MSG_##ENUM: return dec_##name(o, &out->name, bad);
        SOUK_MESSAGES(X)
#undef X
    default: return SOUK_ETYPE;
    }
}

int souk_msg_decode(const void *buf, size_t len, souk_msg_t *out, char *err, size_t errlen)
{
    if (!buf || !out)
        return decode_fail(SOUK_EINVAL, err, errlen, "no frame");
    memset(out, 0, sizeof *out);
    if (len > SOUK_FRAME_MAX)
        return decode_fail(SOUK_ETOOBIG, err, errlen, "frame of %zu bytes over %d", len, SOUK_FRAME_MAX);
    size_t used = scan_object(buf, len);
    if (used == 0)
        return decode_fail(SOUK_EPROTO, err, errlen, "malformed or truncated msgpack");
    if (used != len)
        return decode_fail(SOUK_EPROTO, err, errlen, "%zu trailing bytes", len - used);

    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 2048))
        return decode_fail(SOUK_ENOMEM, err, errlen, "out of memory");
    msgpack_object obj;
    size_t off = 0;
    int rc = SOUK_OK;
    if (msgpack_unpack(buf, len, &off, &zone, &obj) != MSGPACK_UNPACK_SUCCESS || off != len) {
        rc = decode_fail(SOUK_EPROTO, err, errlen, "malformed msgpack");
        goto cleanup;
    }
    if (obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size < 2) {
        rc = decode_fail(SOUK_EPROTO, err, errlen, "not a [version, type, ...] array");
        goto cleanup;
    }
    const msgpack_object *o = obj.via.array.ptr;
    if (o[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || o[0].via.u64 != SOUK_PROTO_VERSION) {
        rc = decode_fail(SOUK_EVERSION, err, errlen, "unsupported version");
        goto cleanup;
    }
    if (o[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || o[1].via.u64 == SOUK_MSG_NONE
        || o[1].via.u64 >= SOUK_MSG_COUNT) {
        rc = decode_fail(SOUK_ETYPE, err, errlen, "unknown message type");
        goto cleanup;
    }
    out->type = (souk_msg_type_t)o[1].via.u64;
    const type_info_t *t = &s_types[out->type];
    if (obj.via.array.size != 2 + t->nfields) {
        rc = decode_fail(SOUK_EPROTO, err, errlen, "%s: %u fields, expected %zu", t->name,
                         obj.via.array.size - 2, t->nfields);
        out->type = SOUK_MSG_NONE;
        goto cleanup;
    }
    size_t bad = 0;
    rc = decode_fields(o + 2, out, &bad);
    if (rc != SOUK_OK) {
        souk_msg_clear(out);
        rc = decode_fail(rc == SOUK_ENOMEM ? rc : SOUK_EPROTO, err, errlen,
                         "%s: field %zu (%s) mistyped, too long or not UTF-8", t->name, bad,
                         t->field_names[bad]);
    }
cleanup:
    msgpack_zone_destroy(&zone);
    return rc;
}

void souk_msg_clear(souk_msg_t *m)
{
    if (!m)
        return;
    switch (m->type) {
#define X(ENUM, name, doc) case SOUK_MSG_##ENUM: free_##name(&m->name); break;
        SOUK_MESSAGES(X)
#undef X
    default: break;
    }
    memset(m, 0, sizeof *m);
}

/* ---- sockets ---------------------------------------------------------- */

int souk_msg_send(void *sock, const void *id, size_t idlen, const souk_msg_t *m, int flags)
{
    char *buf;
    size_t len;
    int rc = souk_msg_encode(m, &buf, &len);
    if (rc != SOUK_OK)
        return rc;
    void *h = zsock_resolve(sock);
    rc = SOUK_OK;
    if (id && zmq_send(h, id, idlen, ZMQ_SNDMORE | flags) < 0)
        rc = errno == EHOSTUNREACH ? SOUK_EUNAVAIL : errno == EAGAIN ? SOUK_EBUSY : SOUK_EIO;
    else if (zmq_send(h, buf, len, flags) < 0)
        rc = errno == EAGAIN ? SOUK_EBUSY : SOUK_EIO;
    free(buf);
    return rc;
}

/* Reads and discards the rest of a multipart message. */
static void drain_more(void *h)
{
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(h, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, h, 0) < 0) {
            zmq_msg_close(&part);
            return;
        }
        zmq_msg_close(&part);
    }
}

int souk_msg_recv(void *sock, void *id, size_t *idlen, souk_msg_t *out, int flags,
                  char *err, size_t errlen)
{
    void *h = zsock_resolve(sock);
    zmq_msg_t part;
    memset(out, 0, sizeof *out);
    if (id && idlen) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, h, flags) < 0) {
            zmq_msg_close(&part);
            return errno == EAGAIN ? SOUK_EBUSY : SOUK_EIO;
        }
        size_t n = zmq_msg_size(&part);
        if (n > *idlen)
            n = *idlen;
        memcpy(id, zmq_msg_data(&part), n);
        *idlen = n;
        bool more = zmq_msg_more(&part);
        zmq_msg_close(&part);
        if (!more)
            return decode_fail(SOUK_EPROTO, err, errlen, "routing id without a body");
        flags &= ~ZMQ_DONTWAIT; /* the rest of a multipart message is already here */
    }
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, h, flags) < 0) {
        zmq_msg_close(&part);
        return errno == EAGAIN ? SOUK_EBUSY : SOUK_EIO;
    }
    bool more = zmq_msg_more(&part);
    int rc = souk_msg_decode(zmq_msg_data(&part), zmq_msg_size(&part), out, err, errlen);
    zmq_msg_close(&part);
    if (more) {
        drain_more(h);
        if (rc == SOUK_OK) {
            souk_msg_clear(out);
            rc = decode_fail(SOUK_EPROTO, err, errlen, "unexpected extra frames");
        }
    }
    return rc;
}
