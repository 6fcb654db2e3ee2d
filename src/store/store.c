/* store.c - picks the storage backend for a --store URI by its scheme.
 *
 * Every backend lives in its own file (sqlite.c, null.c, ...) behind
 * dg_store_ops_t; this table is the only place that lists them. Add a new
 * backend here. Stateless, callable from any thread.
 */
#include "store.h"
#include "../core/commands.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const dg_store_ops_t *const backends[] = {
    &dg_store_sqlite_ops,
    &dg_store_null_ops,
    &dg_store_postgresql_ops,
    &dg_store_influxdb_ops,
};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

/* Other spellings of a scheme: libpq accepts postgres:// too. */
static const struct { const char *scheme; const dg_store_ops_t *ops; } aliases[] = {
    { "postgres", &dg_store_postgresql_ops },
};

static bool scheme_is(const char *uri, const char *scheme)
{
    size_t n = strlen(scheme);
    /* URI schemes are case-insensitive (RFC 3986 3.1). */
    return strncasecmp(uri, scheme, n) == 0 && uri[n] == ':';
}

const dg_store_ops_t *dg_store_lookup(const char *uri)
{
    if (!uri) return NULL;
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (scheme_is(uri, backends[i]->scheme)) return backends[i];
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (scheme_is(uri, aliases[i].scheme)) return aliases[i].ops;
    return NULL;
}

int dg_store_open(const char *uri, const dg_store_config_t *cfg,
                  const dg_store_ops_t **ops, dg_store_t **out, char *err, size_t errlen)
{
    *ops = NULL;
    *out = NULL;
    const dg_store_ops_t *o = dg_store_lookup(uri);
    if (!o) {
        char known[128];
        size_t len = 0;
        known[0] = '\0';
        for (size_t i = 0; i < N_BACKENDS; i++) {
            int n = snprintf(known + len, sizeof known - len, "%s%s:", i ? ", " : "",
                             backends[i]->scheme);
            if (n < 0 || (size_t)n >= sizeof known - len) break;   /* truncated list */
            len += (size_t)n;
        }
        if (err && errlen)
            snprintf(err, errlen, "unknown store URI '%s' (known schemes: %s; "
                     "e.g. --store %s)", uri ? uri : "", known, DG_STORE_DEFAULT_URI);
        return -EINVAL;
    }
    dg_store_config_t defaults = { .fsync = false };
    int rc = o->open(uri, cfg ? cfg : &defaults, out, err, errlen);
    if (rc == 0) *ops = o;
    return rc;
}

static void copy_text(char *dst, size_t cap, const char *src, size_t n)
{
    if (!src) n = 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

void dg__command_from_row(struct dg_command *out, const char *const col[6], const size_t n[6],
                          int64_t created_ms, int64_t updated_ms)
{
    char status[16];
    memset(out, 0, sizeof *out);
    copy_text(out->id, sizeof out->id, col[0], n[0]);
    copy_text(out->drone_id, sizeof out->drone_id, col[1], n[1]);
    copy_text(out->name, sizeof out->name, col[2], n[2]);
    copy_text(out->args, sizeof out->args, col[3], n[3]);
    if (!out->args[0]) snprintf(out->args, sizeof out->args, "{}");
    copy_text(status, sizeof status, col[4], n[4]);
    out->status = dg_command_status_from_name(status);
    if (out->status < 0) out->status = DG_CMD_PENDING;
    copy_text(out->message, sizeof out->message, col[5], n[5]);
    out->created_ms = created_ms;
    out->updated_ms = updated_ms;
}

void dg__store_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
