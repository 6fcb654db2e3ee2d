/* sqlite_walbuf.c - a SQLite VFS shim that coalesces the WAL's appends into
 * few large writes (see sqlite_walbuf.h).
 *
 * Why: SQLite writes every WAL frame with two pwrite() calls, a 24-byte
 * frame header and the page (1 KiB here). With many drones a commit writes
 * ~2 leaf pages per drone, so the writer thread spent about half of its
 * CPU in those system calls (perf of bench_store at 1000 drones, batch
 * 2000: pvm_irq_enable 17 %, __libc_pwrite 8.6 %, vfs_write, fdget,
 * copy_folio ... on this VM). Buffering the frames of one transaction and
 * writing them with one pwrite per WAL_BUF_CAP bytes gives the same bytes
 * in the same file at the same moment SQLite relies on them, minus the
 * calls. docs/benchmarks.md has the figures.
 *
 * When the buffered bytes reach the file (the invariants):
 *   - before SQLite publishes a commit to other connections. SQLite writes
 *     all frames of a transaction, the last one marked as commit frame
 *     (nTruncate != 0 in its header), then updates the WAL index header in
 *     shared memory, with an xShmBarrier() on the database file between
 *     its two copies; readers and the checkpointer only use frames the
 *     header covers. Here: (1) appending the page of a commit frame writes
 *     the buffer out at once, inside SQLite's xWrite, so an error (disk
 *     full, I/O error) fails the COMMIT exactly as an unbuffered write
 *     would; (2) as a safety net, xShmBarrier/xShmLock/xShmMap on any
 *     database file of this VFS first write out the calling thread's
 *     pending WAL buffer (a commit frame header that SQLite rewrites in
 *     place after the frames, walRewriteChecksums, has no page after it).
 *     If that late write fails the process aborts: the commit is about to
 *     be published without its frames, and no ack for it has been sent
 *     (the COMMIT has not returned), so dying keeps "nothing acked is
 *     lost" - the drones resend.
 *   - before any other operation on the WAL file (read, sync, truncate,
 *     size, lock, file control, close): SQLite sees its own writes, fsyncs
 *     cover them (synchronous=FULL), a restart's truncation follows them.
 *   - a write that does not continue the buffered run (an overwrite of an
 *     older frame, a checksum rewrite) writes the buffer out first, so the
 *     file sees the writes in SQLite's order.
 * A process crash loses only buffered frames of a transaction whose COMMIT
 * had not returned: the same as a crash in the middle of SQLite's own
 * pwrites (recovery ignores frames after the last valid commit frame).
 *
 * Only the WAL file is buffered; the database file and journals are the
 * parent VFS's (unix) own files, wrapped only to carry the safety net.
 * Connections of one process share the parent's inode and lock
 * bookkeeping exactly as without the shim (the parent opens every file).
 */
#include "sqlite_walbuf.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bytes per write at most: the unix VFS writes at most 0x1ffff bytes per
 * pwrite (seekAndWriteFd masks the count; a larger xWrite fails with
 * SQLITE_FULL), so stay under 128 KiB */
#define WAL_BUF_CAP   (120 * 1024)
#define WAL_FRAME_HDR 24             /* SQLite's WAL_FRAME_HDRSIZE */
#define WAL_HDR       32             /* SQLite's WAL_HDRSIZE */

typedef struct wb_file {
    sqlite3_file   base;        /* our methods */
    sqlite3_file  *real;        /* the parent's file object (right after this struct) */
    int            is_wal;
    int            commit_hdr;  /* the last write was a commit frame's header */
    unsigned char *buf;         /* WAL only: pending bytes ... */
    size_t         len;
    sqlite3_int64  off;         /* ... for the file from this offset */
} wb_file_t;

static sqlite3_vfs   wb_vfs;
static sqlite3_vfs  *wb_parent;
static sqlite3_io_methods wb_wal_methods, wb_db_methods;
static pthread_once_t wb_once = PTHREAD_ONCE_INIT;
static int           wb_init_rc = SQLITE_ERROR;
/* The calling thread's WAL file with pending bytes (at most one: a thread
 * uses one writer connection at a time). */
static __thread wb_file_t *wb_pending;

static int wb_flush(wb_file_t *f)
{
    if (wb_pending == f) wb_pending = NULL;
    if (!f->len) return SQLITE_OK;
    int rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
    f->len = 0;   /* on error the transaction fails (SQLite rolls it back) */
    return rc;
}

/* The safety net: before shared memory changes hands (see the top). */
static void wb_flush_thread(void)
{
    wb_file_t *f = wb_pending;
    if (!f || !f->len) return;
    int rc = wb_flush(f);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "dronegate: FATAL: writing the SQLite WAL failed (%d) while a commit was "
                "being published; exiting before it is acknowledged\n", rc);
        abort();
    }
}

/* ---- the WAL file ------------------------------------------------------- */

static int wal_close(sqlite3_file *pf)
{
    wb_file_t *f = (wb_file_t *)pf;
    int rc = wb_flush(f);
    int rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int wal_write(sqlite3_file *pf, const void *p, int amt, sqlite3_int64 off)
{
    wb_file_t *f = (wb_file_t *)pf;
    size_t n = (size_t)amt;
    int was_commit_hdr = f->commit_hdr;
    f->commit_hdr = 0;
    if (!(f->len && off == f->off + (sqlite3_int64)f->len && f->len + n <= WAL_BUF_CAP)) {
        int rc = wb_flush(f);                       /* not a continuation: in order */
        if (rc != SQLITE_OK) return rc;
        was_commit_hdr = 0;
        /* a run starts with the WAL header or a frame header; anything
         * else (a page overwritten in place) goes straight to the file */
        if ((amt != WAL_HDR || off != 0) && amt != WAL_FRAME_HDR)
            return f->real->pMethods->xWrite(f->real, p, amt, off);
        f->off = off;
    }
    memcpy(f->buf + f->len, p, n);
    f->len += n;
    wb_pending = f;
    if (amt == WAL_FRAME_HDR) {
        const unsigned char *h = p;                 /* bytes 4-7: nTruncate, big-endian */
        f->commit_hdr = (h[4] | h[5] | h[6] | h[7]) != 0;
        return SQLITE_OK;
    }
    if (was_commit_hdr) return wb_flush(f);         /* the commit frame is complete */
    return SQLITE_OK;
}

#define WAL_PASS(name, args, call)                                  \
    static int wal_##name args                                      \
    {                                                               \
        wb_file_t *f = (wb_file_t *)pf;                             \
        int rc = wb_flush(f);                                       \
        if (rc != SQLITE_OK) return rc;                             \
        return f->real->pMethods->call;                             \
    }

WAL_PASS(read, (sqlite3_file *pf, void *p, int amt, sqlite3_int64 off), xRead(f->real, p, amt, off))
WAL_PASS(truncate, (sqlite3_file *pf, sqlite3_int64 size), xTruncate(f->real, size))
WAL_PASS(sync, (sqlite3_file *pf, int flags), xSync(f->real, flags))
WAL_PASS(file_size, (sqlite3_file *pf, sqlite3_int64 *size), xFileSize(f->real, size))
WAL_PASS(lock, (sqlite3_file *pf, int l), xLock(f->real, l))
WAL_PASS(unlock, (sqlite3_file *pf, int l), xUnlock(f->real, l))
WAL_PASS(check_reserved, (sqlite3_file *pf, int *out), xCheckReservedLock(f->real, out))
WAL_PASS(file_control, (sqlite3_file *pf, int op, void *arg), xFileControl(f->real, op, arg))

/* ---- the database file: the parent's, plus the net (pure pass-throughs
 * also serve the WAL file) ---------------------------------------------- */

#define DB_PASS(name, args, call)                                   \
    static int db_##name args                                       \
    {                                                               \
        wb_file_t *f = (wb_file_t *)pf;                             \
        return f->real->pMethods->call;                             \
    }

static int db_close(sqlite3_file *pf)
{
    wb_file_t *f = (wb_file_t *)pf;
    return f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
}
DB_PASS(read, (sqlite3_file *pf, void *p, int amt, sqlite3_int64 off), xRead(f->real, p, amt, off))
DB_PASS(write, (sqlite3_file *pf, const void *p, int amt, sqlite3_int64 off), xWrite(f->real, p, amt, off))
DB_PASS(truncate, (sqlite3_file *pf, sqlite3_int64 size), xTruncate(f->real, size))
DB_PASS(sync, (sqlite3_file *pf, int flags), xSync(f->real, flags))
DB_PASS(file_size, (sqlite3_file *pf, sqlite3_int64 *size), xFileSize(f->real, size))
DB_PASS(lock, (sqlite3_file *pf, int l), xLock(f->real, l))
DB_PASS(unlock, (sqlite3_file *pf, int l), xUnlock(f->real, l))
DB_PASS(check_reserved, (sqlite3_file *pf, int *out), xCheckReservedLock(f->real, out))
DB_PASS(file_control, (sqlite3_file *pf, int op, void *arg), xFileControl(f->real, op, arg))
DB_PASS(sector_size, (sqlite3_file *pf), xSectorSize(f->real))
DB_PASS(device_characteristics, (sqlite3_file *pf), xDeviceCharacteristics(f->real))
DB_PASS(fetch, (sqlite3_file *pf, sqlite3_int64 off, int amt, void **pp), xFetch(f->real, off, amt, pp))
DB_PASS(unfetch, (sqlite3_file *pf, sqlite3_int64 off, void *p), xUnfetch(f->real, off, p))

static int db_shm_map(sqlite3_file *pf, int pg, int sz, int extend, void volatile **pp)
{
    wb_file_t *f = (wb_file_t *)pf;
    wb_flush_thread();
    return f->real->pMethods->xShmMap(f->real, pg, sz, extend, pp);
}

static int db_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    wb_file_t *f = (wb_file_t *)pf;
    wb_flush_thread();
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void db_shm_barrier(sqlite3_file *pf)
{
    wb_file_t *f = (wb_file_t *)pf;
    wb_flush_thread();
    f->real->pMethods->xShmBarrier(f->real);
}

static int db_shm_unmap(sqlite3_file *pf, int del)
{
    wb_file_t *f = (wb_file_t *)pf;
    wb_flush_thread();
    return f->real->pMethods->xShmUnmap(f->real, del);
}

/* ---- the VFS ------------------------------------------------------------ */

static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *pf, int flags, int *out_flags)
{
    (void)vfs;
    /* journals, temp files: the parent's own object in our slot (it is
     * larger than the parent's), no wrapper at all */
    if (!(flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_DB)))
        return wb_parent->xOpen(wb_parent, name, pf, flags, out_flags);
    wb_file_t *f = (wb_file_t *)pf;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    if (f->is_wal && !(f->buf = malloc(WAL_BUF_CAP))) return SQLITE_NOMEM;
    int rc = wb_parent->xOpen(wb_parent, name, f->real, flags, out_flags);
    if (rc == SQLITE_OK && (!f->real->pMethods || f->real->pMethods->iVersion < 3)) {
        /* not the unix VFS's files: the shim cannot keep its promises */
        if (f->real->pMethods) f->real->pMethods->xClose(f->real);
        rc = SQLITE_CANTOPEN;
    }
    if (rc != SQLITE_OK) {
        free(f->buf);
        f->buf = NULL;
        return rc;   /* base.pMethods stays NULL: SQLite does not call xClose */
    }
    f->base.pMethods = f->is_wal ? &wb_wal_methods : &wb_db_methods;
    return SQLITE_OK;
}

static void *wb_dlopen(sqlite3_vfs *vfs, const char *n) { (void)vfs; return wb_parent->xDlOpen(wb_parent, n); }
static void wb_dlerror(sqlite3_vfs *vfs, int n, char *out) { (void)vfs; wb_parent->xDlError(wb_parent, n, out); }
static void (*wb_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return wb_parent->xDlSym(wb_parent, h, sym);
}
static void wb_dlclose(sqlite3_vfs *vfs, void *h) { (void)vfs; wb_parent->xDlClose(wb_parent, h); }

#define VFS_PASS(name, args, call) \
    static int wb_##name args { (void)vfs; return wb_parent->call; }
VFS_PASS(delete, (sqlite3_vfs *vfs, const char *n, int sync), xDelete(wb_parent, n, sync))
VFS_PASS(access, (sqlite3_vfs *vfs, const char *n, int fl, int *out), xAccess(wb_parent, n, fl, out))
VFS_PASS(full_pathname, (sqlite3_vfs *vfs, const char *n, int len, char *out), xFullPathname(wb_parent, n, len, out))
VFS_PASS(randomness, (sqlite3_vfs *vfs, int n, char *out), xRandomness(wb_parent, n, out))
VFS_PASS(sleep, (sqlite3_vfs *vfs, int us), xSleep(wb_parent, us))
VFS_PASS(current_time_int64, (sqlite3_vfs *vfs, sqlite3_int64 *t), xCurrentTimeInt64(wb_parent, t))
VFS_PASS(get_last_error, (sqlite3_vfs *vfs, int n, char *out), xGetLastError(wb_parent, n, out))

static int wb_current_time(sqlite3_vfs *vfs, double *t)
{
    (void)vfs;
    return wb_parent->xCurrentTime(wb_parent, t);
}

static void wb_init(void)
{
    wb_parent = sqlite3_vfs_find(NULL);
    /* the unix VFS: version >= 2 (xCurrentTimeInt64), io methods version 3 */
    if (!wb_parent || strncmp(wb_parent->zName, "unix", 4) != 0 || wb_parent->iVersion < 2 ||
        !wb_parent->xCurrentTimeInt64)
        return;

    wb_wal_methods = (sqlite3_io_methods){
        .iVersion = 1,      /* no shared memory or mmap on the WAL file itself */
        .xClose = wal_close, .xRead = wal_read, .xWrite = wal_write,
        .xTruncate = wal_truncate, .xSync = wal_sync, .xFileSize = wal_file_size,
        .xLock = wal_lock, .xUnlock = wal_unlock, .xCheckReservedLock = wal_check_reserved,
        .xFileControl = wal_file_control,
        /* pure queries: nothing to write out first */
        .xSectorSize = db_sector_size, .xDeviceCharacteristics = db_device_characteristics,
    };
    wb_db_methods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = db_close, .xRead = db_read, .xWrite = db_write,
        .xTruncate = db_truncate, .xSync = db_sync, .xFileSize = db_file_size,
        .xLock = db_lock, .xUnlock = db_unlock, .xCheckReservedLock = db_check_reserved,
        .xFileControl = db_file_control, .xSectorSize = db_sector_size,
        .xDeviceCharacteristics = db_device_characteristics,
        .xShmMap = db_shm_map, .xShmLock = db_shm_lock, .xShmBarrier = db_shm_barrier,
        .xShmUnmap = db_shm_unmap, .xFetch = db_fetch, .xUnfetch = db_unfetch,
    };
    wb_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(wb_file_t) + wb_parent->szOsFile,
        .mxPathname = wb_parent->mxPathname,
        .zName = DG_SQLITE_WALBUF_VFS,
        .xOpen = wb_open, .xDelete = wb_delete, .xAccess = wb_access,
        .xFullPathname = wb_full_pathname,
        .xDlOpen = wb_dlopen, .xDlError = wb_dlerror, .xDlSym = wb_dlsym, .xDlClose = wb_dlclose,
        .xRandomness = wb_randomness, .xSleep = wb_sleep, .xCurrentTime = wb_current_time,
        .xGetLastError = wb_get_last_error, .xCurrentTimeInt64 = wb_current_time_int64,
    };
    wb_init_rc = sqlite3_vfs_register(&wb_vfs, 0);
}

const char *dg_sqlite_walbuf_vfs(void)
{
    pthread_once(&wb_once, wb_init);
    return wb_init_rc == SQLITE_OK ? DG_SQLITE_WALBUF_VFS : NULL;
}
