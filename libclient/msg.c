/* msg.c - parse the gateway's JSON messages (contract "Server -> drone
 * messages"): session, ack, error, command. Input is untrusted bytes from the
 * network (fuzz/fuzz_client_msg.c): jsmn in strict mode tokenizes, and every
 * member is checked for its type before use; strings are unescaped into
 * fixed buffers (truncated). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#define MAX_TOKENS 4096

static int tok_eq(const char *js, const jsmntok_t *t, const char *s)
{
    size_t n = strlen(s);
    return t->type == JSMN_STRING && (size_t)(t->end - t->start) == n && !memcmp(js + t->start, s, n);
}

/* Index after token i and its subtree. */
static int skip(const jsmntok_t *t, int n, int i)
{
    int end = t[i].end;
    for (i++; i < n && t[i].start < end; i++) {}
    return i;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Unescape a JSON string token into out[cap] (NUL-terminated, truncated at
 * a character boundary; control characters and bad escapes become '?'). */
static void get_str(const char *js, const jsmntok_t *t, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = js + t->start, *e = js + t->end;
    while (p < e) {
        char buf[4];
        size_t k = 1;
        unsigned char c = (unsigned char)*p++;
        if (c == '\\' && p < e) {
            char x = *p++;
            switch (x) {
            case 'n': buf[0] = '\n'; break;
            case 't': buf[0] = '\t'; break;
            case 'r': buf[0] = '\r'; break;
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'u': {
                unsigned v = 0;
                int ok = e - p >= 4;
                for (int i = 0; ok && i < 4; i++) {
                    int h = hexv(p[i]);
                    if (h < 0) ok = 0;
                    else v = v * 16 + (unsigned)h;
                }
                if (!ok) { buf[0] = '?'; break; }
                p += 4;
                if (v >= 0xd800 && v <= 0xdbff && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                    unsigned lo = 0;
                    int ok2 = 1;
                    for (int i = 0; i < 4; i++) {
                        int h = hexv(p[2 + i]);
                        if (h < 0) ok2 = 0;
                        else lo = lo * 16 + (unsigned)h;
                    }
                    if (ok2 && lo >= 0xdc00 && lo <= 0xdfff) {
                        v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
                        p += 6;
                    }
                }
                if (v >= 0xd800 && v <= 0xdfff) { buf[0] = '?'; break; }
                if (v < 0x80) { buf[0] = (char)v; }
                else if (v < 0x800) { buf[0] = (char)(0xc0 | v >> 6); buf[1] = (char)(0x80 | (v & 63)); k = 2; }
                else if (v < 0x10000) { buf[0] = (char)(0xe0 | v >> 12); buf[1] = (char)(0x80 | ((v >> 6) & 63));
                                        buf[2] = (char)(0x80 | (v & 63)); k = 3; }
                else { buf[0] = (char)(0xf0 | v >> 18); buf[1] = (char)(0x80 | ((v >> 12) & 63));
                       buf[2] = (char)(0x80 | ((v >> 6) & 63)); buf[3] = (char)(0x80 | (v & 63)); k = 4; }
                if (k == 1 && buf[0] == 0) buf[0] = '?';
                break;
            }
            default: buf[0] = x; break;   /* \" \\ \/ (and anything else verbatim) */
            }
        } else {
            buf[0] = (char)c;
        }
        if (k == 1 && (unsigned char)buf[0] < 0x20 && buf[0] != '\t' && buf[0] != '\n') buf[0] = '?';
        if (o + k >= cap) break;
        memcpy(out + o, buf, k);
        o += k;
    }
    if (cap) out[o] = '\0';
}

/* Non-negative integer primitive (plain digits, < 2^64). 0 or -1. */
static int get_u64(const char *js, const jsmntok_t *t, uint64_t *v)
{
    if (t->type != JSMN_PRIMITIVE) return -1;
    const char *p = js + t->start, *e = js + t->end;
    if (p == e) return -1;
    uint64_t x = 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

static int is_null(const char *js, const jsmntok_t *t)
{
    return t->type == JSMN_PRIMITIVE && t->end - t->start == 4 && !memcmp(js + t->start, "null", 4);
}

/* Object at token i: fill m. Returns the index after it. */
static int one(const char *js, const jsmntok_t *t, int n, int i, dgc_msg_t *m)
{
    memset(m, 0, sizeof *m);
    int end = skip(t, n, i);
    int have_type = 0, seq_ok = 1, have_last = 0, have_id = 0, have_name = 0;
    char type[16] = "";
    for (int k = i + 1; k < end;) {
        const jsmntok_t *key = &t[k], *val = &t[k + 1];
        if (k + 1 >= end) break;
        if (tok_eq(js, key, "type") && val->type == JSMN_STRING) {
            get_str(js, val, type, sizeof type);
            have_type = 1;
        } else if ((tok_eq(js, key, "seq") || tok_eq(js, key, "last_seq"))) {
            if (is_null(js, val)) { if (tok_eq(js, key, "last_seq")) have_last = 1; }
            else if (get_u64(js, val, &m->seq) == 0) {
                m->has_seq = 1;
                if (tok_eq(js, key, "last_seq")) have_last = 1;
            } else seq_ok = 0;
        } else if (tok_eq(js, key, "code") && val->type == JSMN_STRING) {
            get_str(js, val, m->code, sizeof m->code);
        } else if (tok_eq(js, key, "field") && val->type == JSMN_STRING) {
            get_str(js, val, m->field, sizeof m->field);
        } else if (tok_eq(js, key, "message") && val->type == JSMN_STRING) {
            get_str(js, val, m->message, sizeof m->message);
        } else if (tok_eq(js, key, "id") && val->type == JSMN_STRING) {
            get_str(js, val, m->id, sizeof m->id);
            have_id = m->id[0] != '\0';
        } else if (tok_eq(js, key, "name") && val->type == JSMN_STRING) {
            get_str(js, val, m->name, sizeof m->name);
            have_name = 1;
        } else if (tok_eq(js, key, "args") && val->type == JSMN_OBJECT) {
            m->args = js + val->start;
            m->args_len = (size_t)(val->end - val->start);
        }
        k = skip(t, n, k + 1);
    }
    if (!have_type) return end;
    if (!strcmp(type, "ack") && m->has_seq && seq_ok) m->type = DGC_MSG_ACK;
    else if (!strcmp(type, "session") && have_last && seq_ok) m->type = DGC_MSG_SESSION;
    else if (!strcmp(type, "error")) { m->type = DGC_MSG_ERROR; if (!seq_ok) m->has_seq = 0; }
    else if (!strcmp(type, "command") && have_id && have_name) m->type = DGC_MSG_COMMAND;
    return end;
}

int dgc_parse_server(const char *text, size_t n, void (*cb)(void *ud, const dgc_msg_t *m), void *ud)
{
    jsmn_parser p;
    jsmn_init(&p);
    int nt = jsmn_parse(&p, text, n, NULL, 0);
    if (nt <= 0 || nt > MAX_TOKENS) return -1;
    jsmntok_t *t = malloc((size_t)nt * sizeof *t);
    if (!t) return -1;
    jsmn_init(&p);
    int r = jsmn_parse(&p, text, n, t, (unsigned)nt);
    int delivered = -1;
    if (r == nt) {
        delivered = 0;
        dgc_msg_t m;
        if (t[0].type == JSMN_OBJECT) {
            one(text, t, r, 0, &m);
            cb(ud, &m);
            delivered = 1;
        } else if (t[0].type == JSMN_ARRAY) {
            for (int i = 1; i < r && t[i].start < t[0].end;) {
                if (t[i].type == JSMN_OBJECT) {
                    i = one(text, t, r, i, &m);
                    cb(ud, &m);
                    delivered++;
                } else {
                    i = skip(t, r, i);
                }
            }
        }
    }
    free(t);
    return delivered;
}
