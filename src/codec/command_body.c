/* command_body.c - parse the command POST body (see command_body.h).
 *
 * The whole body is first checked strictly by dg_json_validate() (the
 * telemetry decoder's RFC 8259 check: grammar, depth, strings with valid
 * escapes, UTF-8 and paired surrogates, no raw control characters, strict
 * numbers), so the args kept verbatim are valid UTF-8 JSON. jsmn (strict, no
 * parent links, at most 256 tokens: a body is small) then gives the members.
 * Pure, thread-safe (a small decoder per call).
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
#include "jsmn_util.h"

#include "json_telemetry.h"
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

static bool tok_is(const ctx_t *c, int i, const char *s) { return dg_jsmn_eq(c->js, &c->t[i], s); }
static int skip(const ctx_t *c, int i) { return dg_jsmn_skip(c->t, c->n, i); }

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
    dg_json_decoder_t *d = NULL;
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!js) len = 0;
    char why[160];
    d = dg_json_decoder_new(DG_CMD_BODY_TOKENS);
    if (!d) { fail(err, errlen, "out of memory"); goto out; }
    if (dg_json_validate(d, c.js, len, why, sizeof why)) {
        fail(err, errlen, "body must be a JSON object {\"name\":\"...\",\"args\":{...}} (%s)", why);
        goto out;
    }
    jsmn_parser p;
    jsmn_init(&p);
    c.n = jsmn_parse(&p, c.js, len, t, DG_CMD_BODY_TOKENS);
    if (c.n < 1 || t[0].type != JSMN_OBJECT) { fail(err, errlen, "%s", ERR_BODY); goto out; }

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
    } else {                                       /* verbatim: validated above */
        size_t n = (size_t)(t[args_tok].end - t[args_tok].start);
        if (n > DG_CMD_ARGS_MAX) {
            fail(err, errlen, "args too large (at most %d bytes)", DG_CMD_ARGS_MAX);
            goto out;
        }
        memcpy(out->args, js + t[args_tok].start, n);
        out->args[n] = '\0';
        out->args_len = n;
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
    dg_json_decoder_free(d);
    return rc;
}
