/* command_body.c - parse the command POST body (see command_body.h).
 *
 * jsmn (strict, no parent links, at most 256 tokens: a body is small) gives
 * the token tree; every string is checked with dg_json_str_check() and every
 * primitive must be true/false/null or a strict JSON number. args are then
 * written again token by token (keys and strings unescaped and re-escaped by
 * dg_jw_str, numbers and literals copied, no whitespace), so any laxness jsmn
 * lets through cannot reach the output: it is valid JSON by construction.
 * Recursion depth is bounded by the token count. Pure, thread-safe.
 */
#include "command_body.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "jsonstr.h"
#include "jsonw.h"
#include "number.h"

#define DG_CMD_BODY_TOKENS 256

static const char ERR_BODY[] = "body must be a JSON object {\"name\":\"...\",\"args\":{...}}";
static const char ERR_NAME[] = "name must be a string of 1-32 characters [a-z0-9_]";
static const char ERR_GOTO[] =
    "goto needs args {\"lat\": [-90,90], \"lon\": [-180,180], \"alt\": [-1000,100000]}";

typedef struct ctx {
    const char      *js;
    const jsmntok_t *t;
    int              n;
    dg_buf_t         out;
    char            *tmp;        /* unescape scratch, body length */
    size_t           tmp_cap;
} ctx_t;

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool tok_is(const ctx_t *c, int i, const char *s)
{
    size_t n = strlen(s);
    const jsmntok_t *t = &c->t[i];
    return t->type == JSMN_STRING && (size_t)(t->end - t->start) == n && !memcmp(c->js + t->start, s, n);
}

/* Index after the token i and all its children (no parent links: by offset). */
static int skip(const ctx_t *c, int i)
{
    int end = c->t[i].end;
    for (i++; i < c->n && c->t[i].start < end; i++) {}
    return i;
}

/* Every string and primitive of the body is strict JSON. */
static bool tokens_ok(const ctx_t *c)
{
    for (int i = 0; i < c->n; i++) {
        const jsmntok_t *t = &c->t[i];
        const char *p = c->js + t->start;
        size_t l = (size_t)(t->end - t->start), bad;
        if (t->type == JSMN_STRING) {
            if (dg_json_str_check((const unsigned char *)p, l, &bad) < 0) return false;
        } else if (t->type == JSMN_PRIMITIVE) {
            if (!((l == 4 && !memcmp(p, "true", 4)) || (l == 5 && !memcmp(p, "false", 5)) ||
                  (l == 4 && !memcmp(p, "null", 4)) || dg_number_valid(p, l)))
                return false;
        }
    }
    return true;
}

/* Write the value at token i again; returns the index after it, or -1. */
static int emit(ctx_t *c, int i)
{
    const jsmntok_t *t = &c->t[i];
    const char *p = c->js + t->start;
    size_t l = (size_t)(t->end - t->start);
    switch (t->type) {
    case JSMN_STRING: {
        long m = dg_json_str_unescape(p, l, c->tmp, c->tmp_cap);
        if (m < 0 || dg_jw_str(&c->out, c->tmp, (size_t)m)) return -1;
        return i + 1;
    }
    case JSMN_PRIMITIVE:
        return dg_buf_append(&c->out, p, l) ? -1 : i + 1;
    case JSMN_OBJECT:
    case JSMN_ARRAY: {
        bool obj = t->type == JSMN_OBJECT;
        int size = t->size, j = i + 1;
        if (dg_buf_append(&c->out, obj ? "{" : "[", 1)) return -1;
        for (int k = 0; k < size; k++) {
            if (j >= c->n) return -1;
            if (k && dg_buf_append(&c->out, ",", 1)) return -1;
            if (obj) {
                if (c->t[j].type != JSMN_STRING || c->t[j].size != 1) return -1;
                if ((j = emit(c, j)) < 0 || j >= c->n || dg_buf_append(&c->out, ":", 1)) return -1;
            }
            if ((j = emit(c, j)) < 0) return -1;
        }
        if (dg_buf_append(&c->out, obj ? "}" : "]", 1)) return -1;
        return j;
    }
    default:
        return -1;
    }
}

/* Number member `key` of the object token obj: 1 found, 0 absent, -1 wrong type. */
static int obj_num(const ctx_t *c, int obj, const char *key, double *out)
{
    int i = obj + 1, found = 0;
    for (int k = 0; k < c->t[obj].size && i + 1 < c->n; k++) {
        if (tok_is(c, i, key)) {                   /* duplicates: the last one wins */
            const jsmntok_t *v = &c->t[i + 1];
            found = v->type == JSMN_PRIMITIVE &&
                    dg_parse_double(c->js + v->start, (size_t)(v->end - v->start), out) == 0 ? 1 : -1;
        }
        i = skip(c, i + 1);
    }
    return found;
}

int dg_command_body_parse(const char *js, size_t len, dg_command_body_t *out, char *err, size_t errlen)
{
    jsmntok_t t[DG_CMD_BODY_TOKENS];
    ctx_t c = { .js = js ? js : "", .t = t, .n = 0 };
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!js) len = 0;
    if (len > 2 * DG_CMD_ARGS_MAX + 1024) {
        fail(err, errlen, "body too large (args at most %d bytes)", DG_CMD_ARGS_MAX);
        goto out;
    }
    if (memchr(c.js, '\0', len)) { fail(err, errlen, "%s", ERR_BODY); goto out; }
    jsmn_parser p;
    jsmn_init(&p);
    c.n = jsmn_parse(&p, c.js, len, t, DG_CMD_BODY_TOKENS);
    size_t e = c.n >= 1 ? (size_t)t[0].end : 0;
    while (e < len && (js[e] == ' ' || js[e] == '\n' || js[e] == '\r' || js[e] == '\t')) e++;
    if (c.n < 1 || t[0].type != JSMN_OBJECT || e != len || !tokens_ok(&c)) {
        fail(err, errlen, "%s", ERR_BODY);
        goto out;
    }
    c.tmp_cap = len;
    c.tmp = malloc(c.tmp_cap ? c.tmp_cap : 1);
    if (!c.tmp) { fail(err, errlen, "out of memory"); goto out; }

    int args_tok = -1, i = 1;
    bool have_name = false;
    for (int k = 0; k < t[0].size && i + 1 < c.n; k++) {
        if (tok_is(&c, i, "name")) {
            const jsmntok_t *v = &t[i + 1];
            size_t l = (size_t)(v->end - v->start);
            if (v->type != JSMN_STRING || l < 1 || l > DG_CMD_NAME_MAX) { fail(err, errlen, "%s", ERR_NAME); goto out; }
            for (size_t q = 0; q < l; q++) {
                char ch = js[v->start + q];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) {
                    fail(err, errlen, "%s", ERR_NAME);
                    goto out;
                }
            }
            memcpy(out->name, js + v->start, l);
            out->name[l] = '\0';
            have_name = true;
        } else if (tok_is(&c, i, "args")) {
            if (t[i + 1].type != JSMN_OBJECT) { fail(err, errlen, "args must be a JSON object"); goto out; }
            args_tok = i + 1;
        }
        i = skip(&c, i + 1);
    }
    if (!have_name) { fail(err, errlen, "missing name"); goto out; }

    if (args_tok < 0) {
        memcpy(out->args, "{}", 3);
        out->args_len = 2;
    } else {
        if (emit(&c, args_tok) < 0) { fail(err, errlen, "%s", ERR_BODY); goto out; }
        if (c.out.len > DG_CMD_ARGS_MAX) {
            fail(err, errlen, "args too large (at most %d bytes)", DG_CMD_ARGS_MAX);
            goto out;
        }
        memcpy(out->args, c.out.data, c.out.len);
        out->args[c.out.len] = '\0';
        out->args_len = c.out.len;
    }
    if (!strcmp(out->name, "goto")) {
        double lat, lon, alt;
        if (args_tok < 0 || obj_num(&c, args_tok, "lat", &lat) != 1 || lat < -90 || lat > 90 ||
            obj_num(&c, args_tok, "lon", &lon) != 1 || lon < -180 || lon > 180 ||
            obj_num(&c, args_tok, "alt", &alt) != 1 || alt < -1000 || alt > 100000) {
            fail(err, errlen, "%s", ERR_GOTO);
            goto out;
        }
    }
    rc = 0;
out:
    dg_buf_free(&c.out);
    free(c.tmp);
    return rc;
}
