/* commands.c - see commands.h.
 *
 * One mutex over three indexes of the same nodes (operator commands are rare
 * next to telemetry; every operation below is O(1) or O(what it returns),
 * except the expiry sweep, which is O(live commands) once per tick):
 *
 *   all      doubly linked, creation order (restored ones first, oldest
 *            first): the expiry sweep walks it
 *   by id    hash table (FNV-1a, chaining), doubled at load 1: get / set /
 *            restore duplicate check
 *   by drone hash table of per-drone entries, each with its commands in
 *            creation order and its count of open (not final) commands:
 *            pending-on-connect and the per-drone cap
 *
 * Limits (defaults, dg_commands_set_limits): at most 64 open commands per
 * drone (create -> -EAGAIN, HTTP 429) and 100,000 in total (-ENOSPC, HTTP
 * 503); restored commands are taken back even beyond them (they exist in the
 * store already). Final commands are forgotten 10 timeouts after their last
 * change (memory bound; they stay in the store).
 *
 * Threads: any; the expire callback runs after the mutex is released.
 */
#include "commands.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "hash.h"
#include "timefmt.h"
#include "../codec/jsonw.h"

typedef struct drone_ent drone_ent_t;

typedef struct node {
    struct node *prev, *next;      /* all, creation order */
    struct node *hnext;            /* by-id chain */
    struct node *dprev, *dnext;    /* this drone's commands, creation order */
    drone_ent_t *drone;
    dg_command_t c;
} node_t;

struct drone_ent {
    drone_ent_t *hnext;            /* by-drone chain */
    node_t      *head, *tail;      /* its commands */
    size_t       open;             /* of them not final */
    char         id[DG_DRONE_ID_MAX + 1];
};

typedef struct table {             /* a chained hash table of pointers, grown x2 at load 1 */
    void  **b;
    size_t  mask;                  /* buckets - 1 */
    size_t  n;
} table_t;

struct dg_commands {
    pthread_mutex_t mu;
    node_t         *head, *tail;   /* oldest first */
    table_t         ids;           /* node_t, via hnext */
    table_t         drones;        /* drone_ent_t, via hnext */
    size_t          open;          /* not final, all drones */
    size_t          max_per_drone, max_total;
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

/* ---- hash tables (callers hold the mutex) ---- */

#define ID_NEXT(p)    (&((node_t *)(p))->hnext)
#define DRONE_NEXT(p) (&((drone_ent_t *)(p))->hnext)

static int table_init(table_t *t, size_t buckets)
{
    t->b = calloc(buckets, sizeof *t->b);
    t->mask = buckets - 1;
    t->n = 0;
    return t->b ? 0 : -ENOMEM;
}

static size_t id_hash(const char *id) { return dg_fnv1a32(id, DG_CMD_ID_LEN); }
static size_t drone_hash(const char *id) { return dg_fnv1a32_str(id, DG_DRONE_ID_MAX); }

/* Double the buckets when the load reaches 1 (best effort: a failed
 * allocation keeps the old table, only chains get longer). */
static void ids_grow(table_t *t)
{
    if (t->n <= t->mask) return;
    size_t nb = 2 * (t->mask + 1);
    node_t **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i <= t->mask; i++) {
        for (node_t *n = t->b[i], *x; n; n = x) {
            x = n->hnext;
            size_t h = id_hash(n->c.id) & (nb - 1);
            n->hnext = b[h];
            b[h] = n;
        }
    }
    free(t->b);
    t->b = (void **)b;
    t->mask = nb - 1;
}

static void drones_grow(table_t *t)
{
    if (t->n <= t->mask) return;
    size_t nb = 2 * (t->mask + 1);
    drone_ent_t **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i <= t->mask; i++) {
        for (drone_ent_t *d = t->b[i], *x; d; d = x) {
            x = d->hnext;
            size_t h = drone_hash(d->id) & (nb - 1);
            d->hnext = b[h];
            b[h] = d;
        }
    }
    free(t->b);
    t->b = (void **)b;
    t->mask = nb - 1;
}

static node_t *find(dg_commands_t *t, const char *id, size_t len)
{
    if (len != DG_CMD_ID_LEN) return NULL;
    for (node_t *n = t->ids.b[id_hash(id) & t->ids.mask]; n; n = n->hnext)
        if (!memcmp(n->c.id, id, len)) return n;
    return NULL;
}

static drone_ent_t *drone_find(dg_commands_t *t, const char *drone_id)
{
    for (drone_ent_t *d = t->drones.b[drone_hash(drone_id) & t->drones.mask]; d; d = d->hnext)
        if (!strcmp(d->id, drone_id)) return d;
    return NULL;
}

static drone_ent_t *drone_get(dg_commands_t *t, const char *drone_id)
{
    drone_ent_t *d = drone_find(t, drone_id);
    if (d) return d;
    d = calloc(1, sizeof *d);
    if (!d) return NULL;
    snprintf(d->id, sizeof d->id, "%s", drone_id);
    size_t h = drone_hash(d->id) & t->drones.mask;
    d->hnext = t->drones.b[h];
    t->drones.b[h] = d;
    t->drones.n++;
    drones_grow(&t->drones);
    return d;
}

/* Free a drone entry that has no commands left. */
static void drone_release(dg_commands_t *t, drone_ent_t *d)
{
    if (d->head) return;
    drone_ent_t **dp = (drone_ent_t **)&t->drones.b[drone_hash(d->id) & t->drones.mask];
    while (*dp != d) dp = &(*dp)->hnext;
    *dp = d->hnext;
    t->drones.n--;
    free(d);
}

/* Link n (its drone entry set) into the three indexes, newest last. */
static void link_node(dg_commands_t *t, node_t *n)
{
    n->prev = t->tail;
    n->next = NULL;
    if (t->tail) t->tail->next = n; else t->head = n;
    t->tail = n;

    size_t h = id_hash(n->c.id) & t->ids.mask;
    n->hnext = t->ids.b[h];
    t->ids.b[h] = n;
    t->ids.n++;
    ids_grow(&t->ids);

    drone_ent_t *d = n->drone;
    n->dprev = d->tail;
    n->dnext = NULL;
    if (d->tail) d->tail->dnext = n; else d->head = n;
    d->tail = n;
    if (!is_final(n->c.status)) { d->open++; t->open++; }
}

/* Unlink n from every index and free it (and its drone entry when empty). */
static void unlink_node(dg_commands_t *t, node_t *n)
{
    if (n->prev) n->prev->next = n->next; else t->head = n->next;
    if (n->next) n->next->prev = n->prev; else t->tail = n->prev;

    node_t **pp = (node_t **)&t->ids.b[id_hash(n->c.id) & t->ids.mask];
    while (*pp != n) pp = &(*pp)->hnext;
    *pp = n->hnext;
    t->ids.n--;

    drone_ent_t *d = n->drone;
    if (n->dprev) n->dprev->dnext = n->dnext; else d->head = n->dnext;
    if (n->dnext) n->dnext->dprev = n->dprev; else d->tail = n->dprev;
    if (!is_final(n->c.status)) { d->open--; t->open--; }
    free(n);
    drone_release(t, d);
}

/* Status change of a linked node, keeping the open counts. */
static void set_status(dg_commands_t *t, node_t *n, int status)
{
    if (!is_final(n->c.status) && is_final(status)) { n->drone->open--; t->open--; }
    n->c.status = status;
}

/* ---- public ---- */

dg_commands_t *dg_commands_new(long timeout_ms)
{
    dg_commands_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (table_init(&t->ids, 1024) || table_init(&t->drones, 256)) {
        free(t->ids.b);
        free(t->drones.b);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->timeout_ms = timeout_ms;
    t->max_per_drone = DG_CMD_MAX_OPEN_PER_DRONE;
    t->max_total = DG_CMD_MAX_OPEN_TOTAL;
    return t;
}

void dg_commands_set_limits(dg_commands_t *t, size_t per_drone, size_t total)
{
    pthread_mutex_lock(&t->mu);
    t->max_per_drone = per_drone;
    t->max_total = total;
    pthread_mutex_unlock(&t->mu);
}

void dg_commands_free(dg_commands_t *t)
{
    if (!t) return;
    while (t->head) unlink_node(t, t->head);
    free(t->ids.b);
    free(t->drones.b);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

size_t dg_commands_open(dg_commands_t *t, const char *drone_id)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->open;
    if (drone_id) {
        drone_ent_t *d = drone_find(t, drone_id);
        n = d ? d->open : 0;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

int dg_commands_create(dg_commands_t *t, const char *drone_id, const char *name,
                       const char *args, size_t args_len, int64_t now_ms, dg_command_t *out)
{
    int rc;
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
    if (t->open >= t->max_total) { rc = -ENOSPC; goto out; }
    drone_ent_t *d = drone_get(t, n->c.drone_id);
    if (!d) { rc = -ENOMEM; goto out; }
    if (d->open >= t->max_per_drone) {
        rc = -EAGAIN;
        drone_release(t, d);                       /* when just made (a cap of 0) */
        goto out;
    }
    n->drone = d;
    link_node(t, n);
    *out = n->c;
    n = NULL;
    rc = 0;
out:
    pthread_mutex_unlock(&t->mu);
    free(n);
    return rc;
}

int dg_commands_restore(dg_commands_t *t, const dg_command_t *c)
{
    int rc;
    if (strnlen(c->id, sizeof c->id) != DG_CMD_ID_LEN) return 1;
    node_t *n = calloc(1, sizeof *n);
    if (!n) return -ENOMEM;
    n->c = *c;
    n->c.drone_id[DG_DRONE_ID_MAX] = '\0';
    pthread_mutex_lock(&t->mu);
    if (find(t, c->id, DG_CMD_ID_LEN)) { rc = 1; goto out; }
    drone_ent_t *d = drone_get(t, n->c.drone_id);
    if (!d) { rc = -ENOMEM; goto out; }
    n->drone = d;
    link_node(t, n);
    n = NULL;
    rc = 0;
out:
    pthread_mutex_unlock(&t->mu);
    free(n);
    return rc;
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
    set_status(t, n, status);
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
    drone_ent_t *d = drone_find(t, drone_id);
    for (node_t *n = d ? d->head : NULL; n && k < max; n = n->dnext)
        if (n->c.status == DG_CMD_PENDING) out[k++] = n->c;
    pthread_mutex_unlock(&t->mu);
    return k;
}

void dg_commands_expire(dg_commands_t *t, int64_t now_ms, void (*cb)(void *ud, const dg_command_t *c), void *ud)
{
    dg_command_t *exp = NULL;
    size_t k = 0, cap = 0;
    pthread_mutex_lock(&t->mu);
    for (node_t *n = t->head, *x; n; n = x) {
        x = n->next;
        if (!is_final(n->c.status) && now_ms - n->c.created_ms >= t->timeout_ms) {
            if (k == cap) {                        /* every overdue command, not a fixed batch */
                size_t nc = cap ? 2 * cap : 64;
                dg_command_t *p = realloc(exp, nc * sizeof *p);
                if (!p) break;                     /* the rest: next sweep */
                exp = p;
                cap = nc;
            }
            set_status(t, n, DG_CMD_EXPIRED);
            n->c.updated_ms = now_ms;
            snprintf(n->c.message, sizeof n->c.message, "no answer from the drone within %ld ms", t->timeout_ms);
            exp[k++] = n->c;
        }
        if (is_final(n->c.status) && now_ms - n->c.updated_ms >= 10 * t->timeout_ms)
            unlink_node(t, n);
    }
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < k; i++) cb(ud, &exp[i]);
    free(exp);
}

size_t dg_commands__longest_chain(dg_commands_t *t, int which)
{
    size_t best = 0;
    pthread_mutex_lock(&t->mu);
    const table_t *tb = which ? &t->drones : &t->ids;
    for (size_t i = 0; i <= tb->mask; i++) {
        size_t k = 0;
        if (which) for (drone_ent_t *d = tb->b[i]; d; d = d->hnext) k++;
        else for (node_t *n = tb->b[i]; n; n = n->hnext) k++;
        if (k > best) best = k;
    }
    pthread_mutex_unlock(&t->mu);
    return best;
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
