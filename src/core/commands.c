/* commands.c - see commands.h. A linked list under one mutex: the number of
 * live (non-forgotten) commands is small (commands are operator actions), so
 * O(n) lookups are cheaper than their bookkeeping would be; the table
 * forgets final commands after 10 timeouts. */
#include "commands.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "timefmt.h"
#include "../codec/jsonw.h"

typedef struct node {
    struct node *next;
    dg_command_t c;
} node_t;

struct dg_commands {
    pthread_mutex_t mu;
    node_t         *head, *tail;   /* oldest first */
    long            timeout_ms;
};

static const char *names[DG_CMD__N] = { "pending", "sent", "accepted", "rejected", "done", "expired" };

const char *dg_command_status_name(int s) { return s >= 0 && s < DG_CMD__N ? names[s] : "unknown"; }

int dg_command_status_from_name(const char *s)
{
    for (int i = 0; i < DG_CMD__N; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

int dg_command_status_parse(const char *s, size_t n)
{
    if (n == 8 && !memcmp(s, "accepted", 8)) return DG_CMD_ACCEPTED;
    if (n == 8 && !memcmp(s, "rejected", 8)) return DG_CMD_REJECTED;
    if (n == 4 && !memcmp(s, "done", 4)) return DG_CMD_DONE;
    return -1;
}

static bool is_final(int s) { return s == DG_CMD_REJECTED || s == DG_CMD_DONE || s == DG_CMD_EXPIRED; }

dg_commands_t *dg_commands_new(long timeout_ms)
{
    dg_commands_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->timeout_ms = timeout_ms;
    return t;
}

void dg_commands_free(dg_commands_t *t)
{
    if (!t) return;
    for (node_t *n = t->head, *x; n; n = x) { x = n->next; free(n); }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int dg_commands_create(dg_commands_t *t, const char *drone_id, const char *name,
                       const char *args, size_t args_len, int64_t now_ms, dg_command_t *out)
{
    node_t *n = calloc(1, sizeof *n);
    if (!n) return -ENOMEM;
    unsigned char rnd[DG_CMD_ID_LEN / 2];
    if (RAND_bytes(rnd, sizeof rnd) != 1) { free(n); return -EIO; }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof rnd; i++) {
        n->c.id[2 * i] = hex[rnd[i] >> 4];
        n->c.id[2 * i + 1] = hex[rnd[i] & 15];
    }
    snprintf(n->c.drone_id, sizeof n->c.drone_id, "%s", drone_id);
    snprintf(n->c.name, sizeof n->c.name, "%s", name);
    if (!args || !args_len) { args = "{}"; args_len = 2; }
    if (args_len > DG_CMD_ARGS_MAX) args_len = DG_CMD_ARGS_MAX;
    memcpy(n->c.args, args, args_len);
    n->c.args[args_len] = '\0';
    n->c.status = DG_CMD_PENDING;
    n->c.created_ms = n->c.updated_ms = now_ms;
    pthread_mutex_lock(&t->mu);
    if (t->tail) t->tail->next = n; else t->head = n;
    t->tail = n;
    *out = n->c;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static node_t *find(dg_commands_t *t, const char *id, size_t len)
{
    if (len != DG_CMD_ID_LEN) return NULL;
    for (node_t *n = t->head; n; n = n->next)
        if (!memcmp(n->c.id, id, len)) return n;
    return NULL;
}

int dg_commands_restore(dg_commands_t *t, const dg_command_t *c)
{
    if (strnlen(c->id, sizeof c->id) != DG_CMD_ID_LEN) return 1;
    node_t *n = calloc(1, sizeof *n);
    if (!n) return -ENOMEM;
    n->c = *c;
    pthread_mutex_lock(&t->mu);
    if (find(t, c->id, DG_CMD_ID_LEN)) {
        pthread_mutex_unlock(&t->mu);
        free(n);
        return 1;
    }
    if (t->tail) t->tail->next = n; else t->head = n;
    t->tail = n;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

int dg_commands_get(dg_commands_t *t, const char *id, size_t id_len, dg_command_t *out)
{
    pthread_mutex_lock(&t->mu);
    node_t *n = find(t, id, id_len);
    if (n) *out = n->c;
    pthread_mutex_unlock(&t->mu);
    return n ? 0 : -1;
}

static bool allowed(int from, int to)
{
    if (is_final(from)) return false;
    switch (to) {
    case DG_CMD_SENT:     return from == DG_CMD_PENDING;
    case DG_CMD_ACCEPTED: return from == DG_CMD_PENDING || from == DG_CMD_SENT;
    case DG_CMD_DONE:
    case DG_CMD_REJECTED:
    case DG_CMD_EXPIRED:  return true;
    default:              return false;
    }
}

int dg_commands_set(dg_commands_t *t, const char *id, size_t id_len, const char *drone_id,
                    int status, const char *msg, size_t msg_len, int64_t now_ms, dg_command_t *out)
{
    int rc;
    pthread_mutex_lock(&t->mu);
    node_t *n = find(t, id, id_len);
    if (!n || (drone_id && strcmp(n->c.drone_id, drone_id))) { rc = -1; goto out; }
    if (!allowed(n->c.status, status)) { rc = -2; goto out; }
    n->c.status = status;
    n->c.updated_ms = now_ms;
    if (msg) {
        if (msg_len > DG_CMD_MSG_MAX) msg_len = DG_CMD_MSG_MAX;
        memcpy(n->c.message, msg, msg_len);
        n->c.message[msg_len] = '\0';
    }
    *out = n->c;
    rc = 0;
out:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

size_t dg_commands_pending(dg_commands_t *t, const char *drone_id, dg_command_t *out, size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&t->mu);
    for (node_t *n = t->head; n && k < max; n = n->next)
        if (n->c.status == DG_CMD_PENDING && !strcmp(n->c.drone_id, drone_id)) out[k++] = n->c;
    pthread_mutex_unlock(&t->mu);
    return k;
}

void dg_commands_expire(dg_commands_t *t, int64_t now_ms, void (*cb)(void *ud, const dg_command_t *c), void *ud)
{
    enum { MAXBATCH = 64 };
    dg_command_t *exp = NULL;
    size_t k = 0;
    pthread_mutex_lock(&t->mu);
    node_t **pp = &t->head, *prev = NULL;
    while (*pp) {
        node_t *n = *pp;
        if (!is_final(n->c.status) && now_ms - n->c.created_ms >= t->timeout_ms) {
            n->c.status = DG_CMD_EXPIRED;
            n->c.updated_ms = now_ms;
            snprintf(n->c.message, sizeof n->c.message, "no answer from the drone within %ld ms", t->timeout_ms);
            if (!exp) exp = malloc(MAXBATCH * sizeof *exp);
            if (exp && k < MAXBATCH) exp[k++] = n->c;
        }
        if (is_final(n->c.status) && now_ms - n->c.updated_ms >= 10 * t->timeout_ms) {
            *pp = n->next;
            if (t->tail == n) t->tail = prev;
            free(n);
            continue;
        }
        prev = n;
        pp = &n->next;
    }
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < k; i++) cb(ud, &exp[i]);
    free(exp);
}

int dg_command_json(dg_buf_t *b, const dg_command_t *c)
{
    char ts[32];
    int first = 1, rc = 0;
    rc |= dg_buf_puts(b, "{");
    rc |= dg_jw_key(b, &first, "id");       rc |= dg_jw_str(b, c->id, strlen(c->id));
    rc |= dg_jw_key(b, &first, "drone_id"); rc |= dg_jw_str(b, c->drone_id, strlen(c->drone_id));
    rc |= dg_jw_key(b, &first, "name");     rc |= dg_jw_str(b, c->name, strlen(c->name));
    rc |= dg_jw_key(b, &first, "args");     rc |= dg_buf_puts(b, c->args);   /* validated JSON object */
    rc |= dg_jw_key(b, &first, "status");
    const char *s = dg_command_status_name(c->status);
    rc |= dg_jw_str(b, s, strlen(s));
    rc |= dg_jw_key(b, &first, "message");  rc |= dg_jw_str(b, c->message, strlen(c->message));
    rc |= dg_jw_key(b, &first, "created_at");
    rc |= dg_jw_str(b, ts, dg_format_rfc3339(c->created_ms, ts));
    rc |= dg_jw_key(b, &first, "updated_at");
    rc |= dg_jw_str(b, ts, dg_format_rfc3339(c->updated_ms, ts));
    rc |= dg_buf_puts(b, "}");
    return rc;
}
