/* sqlite_walbuf.h - the "dg-walbuf" SQLite VFS: the default (unix) VFS with
 * the WAL's frame appends coalesced into few large writes (one pwrite per
 * up to 120 KiB instead of two per page). Same bytes, same order as seen by
 * every other connection and by crash recovery: the buffer reaches the file
 * when the commit frame is complete (inside SQLite's xWrite, so errors fail
 * the COMMIT), before any other operation on the WAL, and before shared
 * memory changes hands. Details and the measurement: sqlite_walbuf.c. */
#ifndef DG_SQLITE_WALBUF_H
#define DG_SQLITE_WALBUF_H

#define DG_SQLITE_WALBUF_VFS "dg-walbuf"

/* Registers the VFS once (not as the default); its name, or NULL when the
 * default VFS is not SQLite's unix one (then open with the default). */
const char *dg_sqlite_walbuf_vfs(void);

#endif
