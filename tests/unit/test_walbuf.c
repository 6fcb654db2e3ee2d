/* test_walbuf.c - the dg-walbuf SQLite VFS (src/store/sqlite_walbuf.c): the
 * WAL appends it buffers reach the file whenever SQLite relies on them.
 *
 *   - another connection sees every commit at once (published frames are in
 *     the file);
 *   - a process that dies right after a COMMIT returned (no close, no
 *     checkpoint) loses nothing committed: recovery by a fresh connection on
 *     SQLite's own VFS finds every row, also for transactions that spilled
 *     pages to the WAL and rewrote frames in place (walRewriteChecksums: a
 *     commit frame header with no page after it);
 *   - a write error while the commit frame is written fails that COMMIT
 *     (RLIMIT_FSIZE: EFBIG), the process goes on, and the database keeps
 *     exactly the transactions that committed;
 *   - checkpoints by another dg-walbuf connection copy the newest version
 *     of every page: the database file alone is complete and consistent.
 */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "store/sqlite_walbuf.h"

static char dir[] = "/tmp/dg_walbuf_XXXXXX";
static char path[256];
static int  seq;

static void fresh_path(void)
{
    snprintf(path, sizeof path, "%s/t%d.db", dir, ++seq);
}

static sqlite3 *open_db(const char *vfs)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_exec(db, "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                     "PRAGMA wal_autocheckpoint = 0;", NULL, NULL, NULL);
    return db;
}

/* The first column of the first row of sql, -1 on any error. */
static long long one_value(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static long long count_rows(sqlite3 *db)
{
    return one_value(db, "SELECT count(*), coalesce(sum(v), 0) FROM t");
}

/* One transaction running sql n times, bind(st, i, arg) before each; 0 or
 * SQLite's error code (rolled back). */
static int tx_loop(sqlite3 *db, const char *sql, int n, void (*bind)(sqlite3_stmt *, int, const int *),
                   const int *arg)
{
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    for (int i = 0; rc == SQLITE_OK && i < n; i++) {
        bind(st, i, arg);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void bind_insert(sqlite3_stmt *st, int i, const int *k) { sqlite3_bind_int(st, 1, *k + i); }

/* One transaction of n rows (k: first key); 0 or SQLite's error code. */
static int insert_tx(sqlite3 *db, int k, int n)
{
    return tx_loop(db, "INSERT INTO t(k, v, pad) VALUES (?1, ?1 % 1000, randomblob(60))", n, bind_insert, &k);
}

static const char ddl[] =
    "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER, pad BLOB);"
    "CREATE INDEX IF NOT EXISTS t_v ON t(v, k);";

TEST(vfs_registers)
{
    ASSERT_STR_EQ(dg_sqlite_walbuf_vfs(), DG_SQLITE_WALBUF_VFS);
    ASSERT(sqlite3_vfs_find(DG_SQLITE_WALBUF_VFS) != NULL);
    ASSERT(sqlite3_vfs_find(NULL) != sqlite3_vfs_find(DG_SQLITE_WALBUF_VFS));   /* not the default */
}

TEST(other_connections_see_every_commit)
{
    fresh_path();
    sqlite3 *w = open_db(dg_sqlite_walbuf_vfs()), *r = NULL;
    ASSERT(w);
    ASSERT_EQ(sqlite3_exec(w, ddl, NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);   /* SQLite's own VFS */
    for (int i = 0; i < 50; i++) {
        ASSERT_EQ(insert_tx(w, i * 300, 300), SQLITE_OK);
        ASSERT_EQ(count_rows(r), (i + 1) * 300);
    }
    sqlite3_close(r);
    sqlite3_close(w);
}

/* Child: commit `txs` transactions of `rows` rows, after each COMMIT report
 * on the pipe, then die without closing anything. cache_pages small: pages
 * spill into the WAL before the commit and are rewritten in place. */
static void child_commits_then_dies(int fd, int txs, int rows, int cache_pages)
{
    sqlite3 *w = open_db(dg_sqlite_walbuf_vfs());
    if (!w) _exit(2);
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size = %d", cache_pages);
    if (sqlite3_exec(w, pragma, NULL, NULL, NULL) != SQLITE_OK) _exit(3);
    if (sqlite3_exec(w, ddl, NULL, NULL, NULL) != SQLITE_OK) _exit(4);
    for (int i = 0; i < txs; i++) {
        if (insert_tx(w, i * rows, rows) != SQLITE_OK) _exit(5);
        int done = i + 1;
        if (write(fd, &done, sizeof done) != sizeof done) _exit(6);
    }
    _exit(0);   /* no sqlite3_close: the WAL stays, as after kill -9 */
}

static void crash_case(int txs, int rows, int cache_pages)
{
    fresh_path();
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) { close(p[0]); child_commits_then_dies(p[1], txs, rows, cache_pages); }
    close(p[1]);
    int done = 0, d;
    while (read(p[0], &d, sizeof d) == sizeof d) done = d;
    close(p[0]);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
    ASSERT_EQ(done, txs);
    sqlite3 *r = NULL;   /* recovery on SQLite's own VFS */
    ASSERT_EQ(sqlite3_open_v2(path, &r, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ASSERT_EQ(count_rows(r), (long long)txs * rows);
    sqlite3_stmt *ic = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(r, "PRAGMA integrity_check", -1, &ic, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(ic), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(ic, 0), "ok");
    sqlite3_finalize(ic);
    sqlite3_close(r);
}

TEST(a_process_dying_after_commit_loses_nothing)
{
    crash_case(40, 500, 2000);
}

TEST(spilled_and_rewritten_frames_survive_a_crash)
{
    /* 20,000 rows per transaction through a 10-page cache: spills, pages
     * written again in the same transaction (checksums rewritten) */
    crash_case(3, 20000, 10);
}

TEST(a_write_error_fails_the_commit_not_the_process)
{
    fresh_path();
    sqlite3 *w = open_db(dg_sqlite_walbuf_vfs());
    ASSERT(w);
    ASSERT_EQ(sqlite3_exec(w, ddl, NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(insert_tx(w, 0, 100), SQLITE_OK);
    sqlite3_close(w);

    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        signal(SIGXFSZ, SIG_IGN);                       /* EFBIG instead of the signal */
        sqlite3 *c = open_db(dg_sqlite_walbuf_vfs());
        if (!c) _exit(2);
        if (count_rows(c) != 100) _exit(3);             /* WAL read: opened and mapped */
        struct rlimit rl = { 256 * 1024, 256 * 1024 };  /* the WAL may not grow past this */
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(4);
        int ok = 0, rc = SQLITE_OK;
        for (int i = 1; i < 1000 && (rc = insert_tx(c, i * 100, 100)) == SQLITE_OK; i++) ok++;
        int msg[2] = { ok, rc };
        if (write(p[1], msg, sizeof msg) != sizeof msg) _exit(5);
        sqlite3_close(c);
        _exit(0);
    }
    close(p[1]);
    int msg[2] = { -1, -1 };
    ASSERT_EQ(read(p[0], msg, sizeof msg), (long)sizeof msg);
    close(p[0]);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFEXITED(st));                                /* not aborted */
    ASSERT_EQ(WEXITSTATUS(st), 0);
    ASSERT(msg[0] >= 1 && msg[0] < 999);                  /* some committed, then the limit */
    ASSERT(msg[1] != SQLITE_OK);
    sqlite3 *r = NULL;
    ASSERT_EQ(sqlite3_open_v2(path, &r, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ASSERT_EQ(count_rows(r), 100 + (long long)msg[0] * 100);
    sqlite3_close(r);
}

/* arg: { tag, rows } */
static void bind_update(sqlite3_stmt *st, int i, const int *arg)
{
    sqlite3_bind_int(st, 1, (int)(((long long)arg[0] * 7919 + (long long)i * 104729) % arg[1]));
    sqlite3_bind_int(st, 2, arg[0]);
}

/* One transaction that sets v = tag on n scattered rows of t (0..rows-1). */
static int update_tx(sqlite3 *db, int tag, int n, int rows)
{
    const int arg[2] = { tag, rows };
    return tx_loop(db, "UPDATE t SET v = ?2 WHERE k = ?1", n, bind_update, arg);
}

/* Progress handler: interrupt once more than max x 1000 VM steps ran. */
typedef struct step_bound { long n, max; } step_bound_t;

static int stop_after(void *ud)
{
    step_bound_t *b = ud;
    return ++b->n > b->max;
}

static long long sum_kv(sqlite3 *db)
{
    return one_value(db, "SELECT sum(k * 1000003 + v) FROM t");
}

/* Checkpoints through dg-walbuf (another connection, as the checkpointer
 * thread) while the writer's frames go through the buffer: many versions
 * of scattered pages, a second checkpoint starting mid-WAL. The database
 * file alone (WAL gone, SQLite's own VFS) then holds the newest version of
 * every row, and passes integrity_check. */
TEST(checkpoints_copy_the_newest_frames)
{
    fresh_path();
    enum { ROWS = 20000 };
    sqlite3 *w = open_db(dg_sqlite_walbuf_vfs()), *ck = open_db(dg_sqlite_walbuf_vfs());
    ASSERT(w && ck);
    step_bound_t w_steps = { 0, 30000 };   /* the writer needs ~1100 */
    sqlite3_progress_handler(w, 1000, stop_after, &w_steps);
    ASSERT_EQ(sqlite3_exec(w, ddl, NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(insert_tx(w, 0, ROWS), SQLITE_OK);
    ASSERT_EQ(sqlite3_wal_checkpoint_v2(ck, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL), SQLITE_OK);
    for (int tag = 1; tag <= 15; tag++) ASSERT_EQ(update_tx(w, tag, 400, ROWS), SQLITE_OK);
    /* a reader on this snapshot: the first checkpoint stops at its frame,
     * so the second one starts mid-WAL */
    sqlite3 *pin = open_db(NULL);
    ASSERT(pin);
    ASSERT_EQ(sqlite3_exec(pin, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(count_rows(pin), ROWS);
    for (int tag = 16; tag <= 30; tag++) ASSERT_EQ(update_tx(w, tag, 400, ROWS), SQLITE_OK);
    int log1 = 0, ck1 = 0;
    ASSERT_EQ(sqlite3_wal_checkpoint_v2(ck, NULL, SQLITE_CHECKPOINT_PASSIVE, &log1, &ck1), SQLITE_OK);
    ASSERT(ck1 > 1000 && ck1 < log1);
    ASSERT_EQ(sqlite3_exec(pin, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(pin);
    for (int tag = 31; tag <= 45; tag++) ASSERT_EQ(update_tx(w, tag, 400, ROWS), SQLITE_OK);
    int log2 = 0, ck2 = 0;
    ASSERT_EQ(sqlite3_wal_checkpoint_v2(ck, NULL, SQLITE_CHECKPOINT_PASSIVE, &log2, &ck2), SQLITE_OK);
    ASSERT(log2 > log1 && ck2 == log2);
    long long want = sum_kv(w);
    ASSERT(want > 0);
    sqlite3_close(ck);
    sqlite3_close(w);                                          /* all copied: nothing left to copy */
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    ASSERT(access(wal, F_OK) != 0);
    sqlite3 *r = NULL;
    ASSERT_EQ(sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    /* a file with wrong pages can send SQLite round in circles: a bound in
     * VM steps (~30x what these two statements need) fails it instead */
    step_bound_t steps = { 0, 10000 };     /* these need ~300 */
    sqlite3_progress_handler(r, 1000, stop_after, &steps);
    ASSERT_EQ(sum_kv(r), want);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(r, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(r);
}

int main(void)
{
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    RUN(vfs_registers);
    RUN(other_connections_see_every_commit);
    RUN(a_process_dying_after_commit_loses_nothing);
    RUN(spilled_and_rewritten_frames_survive_a_crash);
    RUN(a_write_error_fails_the_commit_not_the_process);
    RUN(checkpoints_copy_the_newest_frames);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) { /* best effort */ }
    return check_summary("walbuf");
}
