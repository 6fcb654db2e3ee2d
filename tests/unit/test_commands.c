/* test_commands.c - the command table's restore path and the SQLite store's
 * open_commands (commands of an earlier run taken back at start). */
#include "check.h"

#include <stdlib.h>
#include <unistd.h>

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

int main(void)
{
    RUN(restore_keeps_status_and_refuses_duplicates);
    RUN(sqlite_open_commands_filters_status_and_age);
    return check_summary("commands");
}
