/* test_commands.c - the command table (restore, caps, expiry of every overdue
 * command, hashed lookups, forgetting), the command body parser (args
 * re-serialised as valid UTF-8 JSON) and the SQLite store's open_commands
 * (commands of an earlier run taken back at start). */
#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "codec/command_body.h"
#include "core/commands.h"
#include "store/store.h"

extern const dg_store_ops_t dg_store_sqlite_ops;

static dg_command_t cmd(const char *id_tail, int status, int64_t created)
{
    dg_command_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.id, sizeof c.id, "%032d", atoi(id_tail));
    snprintf(c.drone_id, sizeof c.drone_id, "drone-%s", id_tail);
    snprintf(c.name, sizeof c.name, "land");
    snprintf(c.args, sizeof c.args, "{\"n\":%s}", id_tail);
    c.status = status;
    c.created_ms = created;
    c.updated_ms = created + 5;
    return c;
}

static int expired_calls;
static void on_expired(void *ud, const dg_command_t *c) { (void)ud; (void)c; expired_calls++; }

TEST(restore_keeps_status_and_refuses_duplicates)
{
    dg_commands_t *t = dg_commands_new(60000);
    dg_command_t a = cmd("1", DG_CMD_SENT, 1000), out;
    ASSERT_EQ(dg_commands_restore(t, &a), 0);
    ASSERT_EQ(dg_commands_restore(t, &a), 1);           /* known already */
    dg_command_t bad = a;
    bad.id[5] = '\0';
    ASSERT_EQ(dg_commands_restore(t, &bad), 1);         /* not an id */
    ASSERT_EQ(dg_commands_get(t, a.id, DG_CMD_ID_LEN, &out), 0);
    ASSERT_EQ(out.status, DG_CMD_SENT);
    ASSERT_EQ(out.created_ms, 1000);
    ASSERT_STR_EQ(out.args, "{\"n\":1}");
    /* the drone's later answer applies */
    ASSERT_EQ(dg_commands_set(t, a.id, DG_CMD_ID_LEN, "drone-1", DG_CMD_DONE, "ok", 2, 2000, &out), 0);
    ASSERT_EQ(out.status, DG_CMD_DONE);
    /* expiry counts from the original creation time */
    dg_command_t b = cmd("2", DG_CMD_PENDING, 1000);
    ASSERT_EQ(dg_commands_restore(t, &b), 0);
    dg_command_t pend[4];
    ASSERT_EQ(dg_commands_pending(t, "drone-2", pend, 4), 1);
    dg_commands_expire(t, 1000 + 60000, on_expired, NULL);
    ASSERT_EQ(expired_calls, 1);
    ASSERT_EQ(dg_commands_get(t, b.id, DG_CMD_ID_LEN, &out), 0);
    ASSERT_EQ(out.status, DG_CMD_EXPIRED);
    dg_commands_free(t);
}

typedef struct seen { dg_command_t c[8]; int n; } seen_t;

static int collect(void *ud, const dg_command_t *c)
{
    seen_t *s = ud;
    if (s->n < 8) s->c[s->n++] = *c;
    return 0;
}

TEST(sqlite_open_commands_filters_status_and_age)
{
    char dir[] = "/tmp/dg_test_cmd_XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char uri[128], err[256] = "";
    snprintf(uri, sizeof uri, "sqlite:%s/c.db", dir);
    dg_store_config_t cfg = { .fsync = false };
    dg_store_t *s = NULL;
    ASSERT_EQ(dg_store_sqlite_ops.open(uri, &cfg, &s, err, sizeof err), 0);
    const int st[] = { DG_CMD_PENDING, DG_CMD_SENT, DG_CMD_ACCEPTED, DG_CMD_REJECTED, DG_CMD_DONE, DG_CMD_EXPIRED };
    for (int i = 0; i < 6; i++) {
        char tail[16];
        snprintf(tail, sizeof tail, "%d", 10 + i);
        dg_command_t c = cmd(tail, st[i], 5000 - i);    /* created newest first */
        ASSERT_EQ(dg_store_sqlite_ops.put_command(s, &c, err, sizeof err), 0);
    }
    dg_command_t old = cmd("99", DG_CMD_PENDING, 100); /* older than `since` */
    ASSERT_EQ(dg_store_sqlite_ops.put_command(s, &old, err, sizeof err), 0);
    seen_t got = { .n = 0 };
    ASSERT_EQ(dg_store_sqlite_ops.open_commands(s, 1000, collect, &got, err, sizeof err), 0);
    ASSERT_EQ(got.n, 3);
    /* oldest first: accepted (4998), sent (4999), pending (5000) */
    ASSERT_EQ(got.c[0].status, DG_CMD_ACCEPTED);
    ASSERT_EQ(got.c[1].status, DG_CMD_SENT);
    ASSERT_EQ(got.c[2].status, DG_CMD_PENDING);
    ASSERT_EQ(got.c[2].created_ms, 5000);
    ASSERT_EQ(got.c[2].updated_ms, 5005);
    ASSERT_STR_EQ(got.c[2].drone_id, "drone-10");
    ASSERT_STR_EQ(got.c[2].args, "{\"n\":10}");
    dg_store_sqlite_ops.close(s);
    char cmdline[300];
    snprintf(cmdline, sizeof cmdline, "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmdline), 0);
}

TEST(caps_per_drone_and_total)
{
    dg_commands_t *t = dg_commands_new(60000);
    dg_command_t c, first, out;
    for (int i = 0; i < DG_CMD_MAX_OPEN_PER_DRONE; i++) {
        ASSERT_EQ(dg_commands_create(t, "d1", "land", NULL, 0, 1000, &c), 0);
        if (i == 0) first = c;
    }
    ASSERT_EQ(dg_commands_open(t, "d1"), DG_CMD_MAX_OPEN_PER_DRONE);
    ASSERT_EQ(dg_commands_create(t, "d1", "land", NULL, 0, 1000, &c), -EAGAIN);   /* 65th: 429 */
    ASSERT_EQ(dg_commands_create(t, "d2", "land", NULL, 0, 1000, &c), 0);         /* another drone */
    /* sent and accepted still count as open; a final answer frees a place */
    ASSERT_EQ(dg_commands_set(t, first.id, DG_CMD_ID_LEN, "d1", DG_CMD_SENT, NULL, 0, 1001, &out), 0);
    ASSERT_EQ(dg_commands_create(t, "d1", "land", NULL, 0, 1000, &c), -EAGAIN);
    ASSERT_EQ(dg_commands_set(t, first.id, DG_CMD_ID_LEN, "d1", DG_CMD_DONE, NULL, 0, 1002, &out), 0);
    ASSERT_EQ(dg_commands_open(t, "d1"), DG_CMD_MAX_OPEN_PER_DRONE - 1);
    ASSERT_EQ(dg_commands_create(t, "d1", "land", NULL, 0, 1000, &c), 0);
    ASSERT_EQ(dg_commands_open(t, NULL), DG_CMD_MAX_OPEN_PER_DRONE + 1);
    /* total cap: 503 */
    dg_commands_set_limits(t, 1000, DG_CMD_MAX_OPEN_PER_DRONE + 3);
    ASSERT_EQ(dg_commands_create(t, "d3", "land", NULL, 0, 1000, &c), 0);
    ASSERT_EQ(dg_commands_create(t, "d4", "land", NULL, 0, 1000, &c), 0);
    ASSERT_EQ(dg_commands_create(t, "d5", "land", NULL, 0, 1000, &c), -ENOSPC);
    ASSERT_EQ(dg_commands_pending(t, "d5", &out, 1), 0);
    /* a refused drone leaves nothing behind; restore is not capped (already stored) */
    dg_command_t r = cmd("77", DG_CMD_PENDING, 900);
    ASSERT_EQ(dg_commands_restore(t, &r), 0);
    ASSERT_EQ(dg_commands_open(t, NULL), DG_CMD_MAX_OPEN_PER_DRONE + 4);
    dg_commands_free(t);
}

TEST(expire_handles_every_overdue_command)
{
    enum { N = 5000 };
    dg_commands_t *t = dg_commands_new(1000);
    dg_commands_set_limits(t, N, N);
    static dg_command_t made[N];
    for (int i = 0; i < N; i++) {
        char drone[16];
        snprintf(drone, sizeof drone, "d%d", i % 7);
        ASSERT_EQ(dg_commands_create(t, drone, "land", "{}", 2, 1000 + (i < N / 2 ? 0 : 500), &made[i]), 0);
    }
    /* hashed lookups find every one */
    dg_command_t out;
    for (int i = 0; i < N; i++) {
        if (dg_commands_get(t, made[i].id, DG_CMD_ID_LEN, &out) || strcmp(out.id, made[i].id)) {
            CHECK__FAIL("command %d not found by id", i);
            break;
        }
    }
    ASSERT_EQ(dg_commands_get(t, "0123456789abcdef0123456789abcdef", DG_CMD_ID_LEN, &out), -1);
    ASSERT_EQ(dg_commands_get(t, made[0].id, 31, &out), -1);
    /* one sweep: all of the first half (created at 1000), none of the second */
    expired_calls = 0;
    dg_commands_expire(t, 2000, on_expired, NULL);
    ASSERT_EQ(expired_calls, N / 2);
    ASSERT_EQ(dg_commands_open(t, NULL), N - N / 2);
    ASSERT_EQ(dg_commands_get(t, made[0].id, DG_CMD_ID_LEN, &out), 0);
    ASSERT_EQ(out.status, DG_CMD_EXPIRED);
    ASSERT_EQ(dg_commands_get(t, made[N - 1].id, DG_CMD_ID_LEN, &out), 0);
    ASSERT_EQ(out.status, DG_CMD_PENDING);
    expired_calls = 0;
    dg_commands_expire(t, 2500, on_expired, NULL);
    ASSERT_EQ(expired_calls, N - N / 2);
    ASSERT_EQ(dg_commands_open(t, NULL), 0);
    dg_command_t pend[4];
    ASSERT_EQ(dg_commands_pending(t, "d3", pend, 4), 0);
    /* final commands are forgotten 10 timeouts after their last change */
    dg_commands_expire(t, 2000 + 10 * 1000, on_expired, NULL);
    ASSERT_EQ(dg_commands_get(t, made[0].id, DG_CMD_ID_LEN, &out), -1);
    ASSERT_EQ(dg_commands_get(t, made[N - 1].id, DG_CMD_ID_LEN, &out), 0);
    dg_commands_expire(t, 2500 + 10 * 1000, on_expired, NULL);
    ASSERT_EQ(dg_commands_get(t, made[N - 1].id, DG_CMD_ID_LEN, &out), -1);
    /* the table still works once emptied */
    ASSERT_EQ(dg_commands_create(t, "d3", "land", NULL, 0, 20000, &out), 0);
    ASSERT_EQ(dg_commands_pending(t, "d3", pend, 4), 1);
    ASSERT_STR_EQ(pend[0].id, out.id);
    dg_commands_free(t);
}

/* 100,000 open commands (the default total cap) of 25,000 drones: both
 * indexes grew with them, so a lookup walks a short chain, not a list. */
TEST(lookups_stay_short_at_fleet_scale)
{
    dg_commands_t *t = dg_commands_new(60000);
    dg_command_t c, out[8];
    static char ids[DG_CMD_MAX_OPEN_TOTAL][DG_CMD_ID_LEN + 1];
    char drone[16];
    for (int i = 0; i < DG_CMD_MAX_OPEN_TOTAL; i++) {
        snprintf(drone, sizeof drone, "d%05d", i % 25000);
        ASSERT_EQ(dg_commands_create(t, drone, "land", NULL, 0, 1000 + i, &c), 0);
        memcpy(ids[i], c.id, DG_CMD_ID_LEN + 1);
    }
    ASSERT_EQ(dg_commands_open(t, NULL), DG_CMD_MAX_OPEN_TOTAL);
    ASSERT(dg_commands__longest_chain(t, 0) <= 12);
    ASSERT(dg_commands__longest_chain(t, 1) <= 12);
    for (int i = 0; i < DG_CMD_MAX_OPEN_TOTAL; i += 997) {
        ASSERT_EQ(dg_commands_get(t, ids[i], DG_CMD_ID_LEN, &c), 0);
        ASSERT_STR_EQ(c.id, ids[i]);
    }
    ASSERT_EQ(dg_commands_pending(t, "d12345", out, 8), 4);
    ASSERT_EQ(out[0].created_ms, 1000 + 12345);
    ASSERT_EQ(out[3].created_ms, 1000 + 12345 + 75000);
    dg_commands_free(t);
}

TEST(pending_in_order_per_drone)
{
    dg_commands_t *t = dg_commands_new(60000);
    dg_command_t a, b, c, x, out, pend[8];
    ASSERT_EQ(dg_commands_create(t, "d1", "one", NULL, 0, 1, &a), 0);
    ASSERT_EQ(dg_commands_create(t, "d2", "other", NULL, 0, 2, &x), 0);
    ASSERT_EQ(dg_commands_create(t, "d1", "two", NULL, 0, 3, &b), 0);
    ASSERT_EQ(dg_commands_create(t, "d1", "three", NULL, 0, 4, &c), 0);
    ASSERT_EQ(dg_commands_set(t, b.id, DG_CMD_ID_LEN, "d1", DG_CMD_SENT, NULL, 0, 5, &out), 0);
    ASSERT_EQ(dg_commands_set(t, b.id, DG_CMD_ID_LEN, "d2", DG_CMD_DONE, NULL, 0, 5, &out), -1);  /* not its own */
    ASSERT_EQ(dg_commands_pending(t, "d1", pend, 8), 2);
    ASSERT_STR_EQ(pend[0].name, "one");
    ASSERT_STR_EQ(pend[1].name, "three");
    ASSERT_EQ(dg_commands_pending(t, "d1", pend, 1), 1);
    ASSERT_EQ(dg_commands_pending(t, "d2", pend, 8), 1);
    ASSERT_EQ(dg_commands_pending(t, "nobody", pend, 8), 0);
    dg_commands_free(t);
}

static int body(const char *js, dg_command_body_t *b, char *err)
{
    return dg_command_body_parse(js, strlen(js), b, err, 160);
}

TEST(command_body_keeps_valid_args)
{
    dg_command_body_t b;
    char err[160];
    ASSERT_EQ(body("{\"name\":\"land\"}", &b, err), 0);
    ASSERT_STR_EQ(b.name, "land");
    ASSERT_STR_EQ(b.args, "{}");
    /* valid args are kept as written: whitespace, escapes, non-ASCII */
    const char *args = "{ \"a\" : \"\\u00e9\\/\\n\xc3\xa9\" , \"b\" : [ 1 , true , null , -2.5e3 ] ,\n"
                       " \"c\" : { } , \"\\u0064\" : \"\\ud83d\\ude00\" }";
    char js[400];
    snprintf(js, sizeof js, " {\"name\" : \"x_1\" , \"args\" : %s } \n", args);
    ASSERT_EQ(body(js, &b, err), 0);
    ASSERT_STR_EQ(b.name, "x_1");
    ASSERT_STR_EQ(b.args, args);
    ASSERT_EQ(b.args_len, strlen(args));
    ASSERT_EQ(body("{\"name\":\"goto\",\"args\":{\"lat\":47.5,\"lon\":8.5,\"alt\":500}}", &b, err), 0);
    ASSERT_STR_EQ(b.args, "{\"lat\":47.5,\"lon\":8.5,\"alt\":500}");
    ASSERT_EQ(body("{\"name\":\"x\",\"args\":{\"a\":\"\\u0000\"}}", &b, err), 0);     /* escaped NUL */
    ASSERT_STR_EQ(b.args, "{\"a\":\"\\u0000\"}");
}

TEST(command_body_rejects_what_peers_cannot_read)
{
    static const char *bad[] = {
        /* invalid UTF-8 (a drone's or dashboard's WebSocket would fail with 1007) */
        "{\"name\":\"x\",\"args\":{\"a\":\"\xff\"}}",
        "{\"name\":\"x\",\"args\":{\"a\":\"\xc3\"}}",
        "{\"name\":\"x\",\"args\":{\"a\":\"\xed\xa0\x80\"}}",          /* UTF-8 encoded surrogate */
        "{\"name\":\"x\",\"args\":{\"a\":\"\xc0\xaf\"}}",              /* overlong */
        "{\"name\":\"x\",\"args\":{\"\xfe\":1}}",                      /* in a key */
        "{\"name\":\"x\",\"args\":{\"a\":[\"\xf5\x80\x80\x80\"]}}",   /* nested, > U+10FFFF */
        /* not JSON the peer can parse */
        "{\"name\":\"x\",\"args\":{\"a\":\"\x01\"}}",                  /* raw control character */
        "{\"name\":\"x\",\"args\":{\"a\":\"tab\there\"}}",
        "{\"name\":\"x\",\"args\":{\"a\":\"\\ud800\"}}",                /* lone surrogate */
        "{\"name\":\"x\",\"args\":{\"a\":\"\\udc00\\ud800\"}}",
        "{\"name\":\"x\",\"args\":{\"a\":\"\\x41\"}}",                  /* bad escape */
        "{\"name\":\"x\",\"args\":{\"a\":tru}}", "{\"name\":\"x\",\"args\":{\"a\":01}}",
        "{\"name\":\"x\",\"args\":{\"a\":NaN}}", "{\"name\":\"x\",\"args\":{\"a\":[1 2]}}",
        "{\"name\":\"x\",\"args\":{\"a\":[1,]}}", "{\"name\":\"x\",\"args\":{,}}",
        /* shape */
        "", "not json", "[]", "{\"args\":{}}", "{\"name\":\"\"}", "{\"name\":\"Land!\"}", "{\"name\":\"x\",\"args\":5}",
        "{\"name\":\"goto\",\"args\":{\"lat\":95,\"lon\":1,\"alt\":10}}", "{\"name\":\"goto\",\"args\":{\"lat\":1}}",
        "{\"name\":\"goto\"}", "{\"name\":\"x\"} x", "{\"name\":\"\xff\"}",
    };
    dg_command_body_t b;
    char err[160];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        if (body(bad[i], &b, err) != -1) CHECK__FAIL("accepted bad body #%zu: %s", i, bad[i]);
        else if (!err[0]) CHECK__FAIL("no reason for bad body #%zu", i);
    }
    /* NUL inside the body, and a NULL body */
    ASSERT_EQ(dg_command_body_parse("{\"name\":\"x\"}\0", 13, &b, err, sizeof err), -1);
    ASSERT_EQ(dg_command_body_parse(NULL, 0, &b, err, sizeof err), -1);
    /* args larger than DG_CMD_ARGS_MAX once re-serialised */
    static char big[DG_CMD_ARGS_MAX + 100];
    int n = snprintf(big, sizeof big, "{\"name\":\"x\",\"args\":{\"a\":\"");
    memset(big + n, 'y', DG_CMD_ARGS_MAX);
    snprintf(big + n + DG_CMD_ARGS_MAX, sizeof big - (size_t)n - DG_CMD_ARGS_MAX, "\"}}");
    ASSERT_EQ(body(big, &b, err), -1);
    ASSERT(strstr(err, "too large") != NULL);
    /* just fits */
    n = snprintf(big, sizeof big, "{\"name\":\"x\",\"args\":{\"a\":\"");
    memset(big + n, 'y', DG_CMD_ARGS_MAX - 8);
    snprintf(big + n + DG_CMD_ARGS_MAX - 8, sizeof big - (size_t)n - DG_CMD_ARGS_MAX + 8, "\"}}");
    ASSERT_EQ(body(big, &b, err), 0);
    ASSERT_EQ(b.args_len, DG_CMD_ARGS_MAX);
}

int main(void)
{
    RUN(restore_keeps_status_and_refuses_duplicates);
    RUN(sqlite_open_commands_filters_status_and_age);
    RUN(caps_per_drone_and_total);
    RUN(expire_handles_every_overdue_command);
    RUN(lookups_stay_short_at_fleet_scale);
    RUN(pending_in_order_per_drone);
    RUN(command_body_keeps_valid_args);
    RUN(command_body_rejects_what_peers_cannot_read);
    return check_summary("commands");
}
