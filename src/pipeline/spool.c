/* spool.c - the on-disk backlog file (see spool.h). Writer thread only.
 *
 * FILE FORMAT (version 1). All integers are little-endian; offsets in bytes.
 *
 * The file is a 32-byte header followed by zero or more record blocks,
 * appended one after another:
 *
 *   header
 *   +--------+------+------------------------------------------------------+
 *   | offset | size | content                                              |
 *   +--------+------+------------------------------------------------------+
 *   |      0 |    8 | magic: "DGSPOOL" and a NUL byte                      |
 *   |      8 |    4 | format version: 1                                    |
 *   |     12 |    4 | header size: 32                                      |
 *   |     16 |    8 | run id: random 64-bit id of the process that started |
 *   |        |      | this file (records in it are that run's)             |
 *   |     24 |    4 | reserved, 0                                          |
 *   |     28 |    4 | CRC-32C of bytes 0..27                               |
 *   +--------+------+------------------------------------------------------+
 *
 *   record block (one per record)
 *   +--------+------+------------------------------------------------------+
 *   |      0 |    4 | L: payload length, 94..190                           |
 *   |      4 |    4 | CRC-32C of bytes 0..3 (the length) and the payload   |
 *   |      8 |    L | payload                                              |
 *   +--------+------+------------------------------------------------------+
 *
 *   payload (one dg_record_t, field by field; no padding, no pointers)
 *   +--------+------+------------------------------------------------------+
 *   |      0 |    8 | seq (u64)                                            |
 *   |      8 |    8 | ts_ms (i64, ms since the Unix epoch)                 |
 *   |     16 |    8 | recv_us (i64, us since the Unix epoch)               |
 *   |     24 |   56 | lat, lon, alt, speed, heading, climb, battery: seven |
 *   |        |      | IEEE 754 binary64 bit patterns (NaN = absent)        |
 *   |     80 |    4 | flags (u32, DG_REC_HAS_*)                            |
 *   |     84 |    8 | origin (u64 token, meaningful only in the run named  |
 *   |        |      | by the header; see below)                            |
 *   |     92 |    1 | I: drone id length, 1..64                            |
 *   |     93 |    1 | S: status length, 0..32                              |
 *   |     94 |    I | drone id bytes (no NUL)                              |
 *   |   94+I |    S | status bytes (no NUL)                                |
 *   +--------+------+------------------------------------------------------+
 *   L = 94 + I + S.
 *
 * CRC-32C is the Castagnoli CRC (polynomial 0x1EDC6F41, reflected
 * 0x82F63B78, initial value and final xor 0xFFFFFFFF), as in iSCSI/ext4.
 *
 * Writing: a block is appended with one pwrite() at the end of the valid
 * part; records are never rewritten in place. Replay reads from the front;
 * when everything has been replayed the file is cut back to its header and
 * the header is rewritten with the current run id. The file is not fsynced:
 * it survives a crash of the process (kill -9, OOM), not a power loss.
 *
 * Reading back (at open, and again while replaying): the valid part ends at
 * the first block whose length is out of range, that runs past the end of
 * the file, or whose CRC does not match (a torn append after a crash, or
 * damage). Everything from there on is cut off and reported once; the
 * records before it are replayed. Damage in the middle therefore loses the
 * records after it; they were never acked, so the drones still hold them.
 *
 * Runs: records present when the file is opened were written by an earlier
 * run (the header names it). Their origin tokens name connections that no
 * longer exist (and whose slots/generations the new run reuses), so they are
 * stored but never acked. Records appended by this run come after them.
 *
 * Limits: max_bytes counts the block bytes after the header.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_SIZE      32u
#define BLK_HDR       8u
#define PAYLOAD_FIXED 94u
#define PAYLOAD_MAX   (PAYLOAD_FIXED + DG_DRONE_ID_MAX + DG_STATUS_MAX)
#define BLOCK_MAX     (BLK_HDR + PAYLOAD_MAX)
static const unsigned char MAGIC[8] = { 'D', 'G', 'S', 'P', 'O', 'O', 'L', 0 };

struct dg_spool {
    int       fd;
    char      path[1100];
    uint64_t  max;             /* block bytes allowed */
    uint64_t  run;             /* this process */
    uint64_t  file_run;        /* run id in the header */
    uint64_t  rd, end;         /* file offsets: next block to replay, end of the valid part */
    uint64_t  earlier_end;     /* blocks before this offset are of an earlier run */
    uint64_t  pending, earlier;/* records in [rd, end), of which of an earlier run */
    uint64_t  last_end;        /* offset after the blocks of the last read */
    size_t    last_n, last_earlier;
    unsigned char *buf;
    size_t    bufcap;
};

/* ---- CRC-32C ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

static uint32_t crc32c(const unsigned char *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    return crc_update(0xFFFFFFFFu, p, n) ^ 0xFFFFFFFFu;
}

/* ---- little-endian fields ---- */

static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t get32(const unsigned char *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }
static void putd(unsigned char *p, double d) { uint64_t v; memcpy(&v, &d, 8); put64(p, v); }
static double getd(const unsigned char *p) { uint64_t v = get64(p); double d; memcpy(&d, &v, 8); return d; }

static void make_header(unsigned char h[HDR_SIZE], uint64_t run)
{
    memset(h, 0, HDR_SIZE);
    memcpy(h, MAGIC, 8);
    put32(h + 8, DG_SPOOL_VERSION);
    put32(h + 12, HDR_SIZE);
    put64(h + 16, run);
    put32(h + 28, crc32c(h, 28));
}

/* One block at p; returns its size. */
static size_t encode(unsigned char *p, const dg_record_t *r)
{
    unsigned idl = r->drone_id_len <= DG_DRONE_ID_MAX ? r->drone_id_len : DG_DRONE_ID_MAX;
    unsigned stl = r->status_len <= DG_STATUS_MAX ? r->status_len : DG_STATUS_MAX;
    unsigned char *q = p + BLK_HDR;
    put64(q + 0, r->seq);
    put64(q + 8, (uint64_t)r->ts_ms);
    put64(q + 16, (uint64_t)r->recv_us);
    const double d[7] = { r->lat, r->lon, r->alt, r->speed, r->heading, r->climb, r->battery };
    for (int i = 0; i < 7; i++) putd(q + 24 + 8 * i, d[i]);
    put32(q + 80, r->flags);
    put64(q + 84, r->origin);
    q[92] = (unsigned char)idl;
    q[93] = (unsigned char)stl;
    memcpy(q + PAYLOAD_FIXED, r->drone_id, idl);
    memcpy(q + PAYLOAD_FIXED + idl, r->status, stl);
    uint32_t len = PAYLOAD_FIXED + idl + stl;
    put32(p, len);
    pthread_once(&crc_once, crc_init);
    uint32_t crc = crc_update(0xFFFFFFFFu, p, 4);
    crc = crc_update(crc, q, len) ^ 0xFFFFFFFFu;
    put32(p + 4, crc);
    return BLK_HDR + len;
}

/* Check the block at p (avail bytes there). Returns its size, 0 when it does
 * not fit in avail (may be complete further on), -1 when damaged. */
static long check_block(const unsigned char *p, size_t avail)
{
    if (avail < BLK_HDR) return 0;
    uint32_t len = get32(p);
    if (len < PAYLOAD_FIXED || len > PAYLOAD_MAX) return -1;
    if (avail < BLK_HDR + len) return 0;
    const unsigned char *q = p + BLK_HDR;
    if (q[92] < 1 || q[92] > DG_DRONE_ID_MAX || q[93] > DG_STATUS_MAX || PAYLOAD_FIXED + q[92] + q[93] != len)
        return -1;
    pthread_once(&crc_once, crc_init);
    uint32_t crc = crc_update(0xFFFFFFFFu, p, 4);
    crc = crc_update(crc, q, len) ^ 0xFFFFFFFFu;
    if (crc != get32(p + 4)) return -1;
    return (long)(BLK_HDR + len);
}

static void decode(const unsigned char *p, dg_record_t *r)
{
    const unsigned char *q = p + BLK_HDR;
    dg_record_init(r);
    r->seq = get64(q);
    r->ts_ms = (int64_t)get64(q + 8);
    r->recv_us = (int64_t)get64(q + 16);
    r->lat = getd(q + 24); r->lon = getd(q + 32); r->alt = getd(q + 40);
    r->speed = getd(q + 48); r->heading = getd(q + 56); r->climb = getd(q + 64); r->battery = getd(q + 72);
    r->flags = get32(q + 80);
    r->origin = get64(q + 84);
    r->drone_id_len = q[92];
    r->status_len = q[93];
    memcpy(r->drone_id, q + PAYLOAD_FIXED, r->drone_id_len);
    r->drone_id[r->drone_id_len] = '\0';
    memcpy(r->status, q + PAYLOAD_FIXED + r->drone_id_len, r->status_len);
    r->status[r->status_len] = '\0';
}

static int reserve(dg_spool_t *s, size_t n)
{
    if (n <= s->bufcap) return 0;
    unsigned char *p = realloc(s->buf, n);
    if (!p) return -ENOMEM;
    s->buf = p;
    s->bufcap = n;
    return 0;
}

static int write_header(dg_spool_t *s)
{
    unsigned char h[HDR_SIZE];
    make_header(h, s->run);
    if (pwrite(s->fd, h, HDR_SIZE, 0) != (ssize_t)HDR_SIZE) return errno ? -errno : -EIO;
    s->file_run = s->run;
    return 0;
}

/* Find the end of the valid blocks from HDR_SIZE up to size; counts them. */
static int scan(dg_spool_t *s, uint64_t size, uint64_t *valid_end, uint64_t *count)
{
    const size_t chunk = 1u << 20;
    int rc = reserve(s, chunk);
    if (rc) return rc;
    uint64_t off = HDR_SIZE, n = 0;
    for (;;) {
        if (off >= size) break;
        size_t want = size - off < chunk ? (size_t)(size - off) : chunk;
        ssize_t got = pread(s->fd, s->buf, want, (off_t)off);
        if (got < 0) return -errno;
        if (got == 0) break;
        size_t pos = 0;
        long b = 0;
        while ((b = check_block(s->buf + pos, (size_t)got - pos)) > 0) { pos += (size_t)b; n++; }
        off += pos;
        /* stop at a damaged block, or at an incomplete one when this read
         * reached the end of the file (torn append); a block cut by the
         * chunk boundary is read again from its start */
        if (b < 0 || want < chunk || (size_t)got < want || pos == 0) break;
    }
    *valid_end = off;
    *count = n;
    return 0;
}

int dg_spool_open(const char *path, uint64_t max_bytes, uint64_t run_id, dg_spool_t **out,
                  char *err, size_t errlen, char *note, size_t notelen)
{
    int rc = 0;
    if (note && notelen) note[0] = '\0';
    dg_spool_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->fd = -1;
    s->max = max_bytes;
    s->run = run_id;
    if ((size_t)snprintf(s->path, sizeof s->path, "%s", path) >= sizeof s->path) {
        snprintf(err, errlen, "spool path too long: %.100s...", path);
        rc = -ENAMETOOLONG;
        goto out;
    }
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (s->fd < 0 || fstat(s->fd, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open the spool %s: %s", path, strerror(errno));
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    unsigned char h[HDR_SIZE];
    if (size < HDR_SIZE) {
        /* new, or torn while it was being created (nothing in it yet) */
        if (size && (pread(s->fd, h, (size_t)size, 0) != (ssize_t)size ||
                     memcmp(h, MAGIC, size < sizeof MAGIC ? (size_t)size : sizeof MAGIC))) {
            snprintf(err, errlen, "%s is not a dronegate spool (%" PRIu64 " bytes, no spool header): "
                     "move it away or set --spool-dir to another directory", path, size);
            rc = -EPROTO;
            goto out;
        }
        if (ftruncate(s->fd, 0) < 0 || (rc = write_header(s)) < 0) {
            rc = rc ? rc : -errno;
            snprintf(err, errlen, "cannot write the spool %s: %s", path, strerror(-rc));
            goto out;
        }
        s->rd = s->end = s->earlier_end = HDR_SIZE;
        goto out;
    }
    if (pread(s->fd, h, HDR_SIZE, 0) != (ssize_t)HDR_SIZE) {
        rc = -errno;
        snprintf(err, errlen, "cannot read the spool %s: %s", path, strerror(errno));
        goto out;
    }
    if (memcmp(h, MAGIC, sizeof MAGIC)) {
        snprintf(err, errlen, "%s is not a dronegate spool of format version %d (bad magic): "
                 "move it away or set --spool-dir to another directory", path, DG_SPOOL_VERSION);
        rc = -EPROTO;
        goto out;
    }
    if (get32(h + 8) != DG_SPOOL_VERSION || get32(h + 12) != HDR_SIZE) {
        snprintf(err, errlen, "the spool %s has format version %" PRIu32 "; this dronegate reads version %d: "
                 "replay it with the dronegate that wrote it, or move it away", path, get32(h + 8), DG_SPOOL_VERSION);
        rc = -EPROTO;
        goto out;
    }
    if (get32(h + 28) != crc32c(h, 28)) {
        snprintf(err, errlen, "the spool %s has a damaged header (checksum mismatch): move it away "
                 "(its records cannot be trusted)", path);
        rc = -EPROTO;
        goto out;
    }
    s->file_run = get64(h + 16);
    uint64_t valid = 0, count = 0;
    if ((rc = scan(s, size, &valid, &count)) < 0) {
        snprintf(err, errlen, "cannot read the spool %s: %s", path, strerror(-rc));
        goto out;
    }
    if (valid < size) {
        if (note && notelen)
            snprintf(note, notelen, "spool %s: cut off %" PRIu64 " bytes of a torn or damaged tail at offset %"
                     PRIu64 " (a crash during an append); the %" PRIu64 " records before it are replayed",
                     path, size - valid, valid, count);
        if (ftruncate(s->fd, (off_t)valid) < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot cut the damaged tail of the spool %s: %s", path, strerror(errno));
            goto out;
        }
    }
    s->rd = HDR_SIZE;
    s->end = s->earlier_end = valid;
    s->pending = s->earlier = count;
    if (count == 0 && (rc = write_header(s)) < 0) {   /* empty: it is this run's file now */
        snprintf(err, errlen, "cannot write the spool %s: %s", path, strerror(-rc));
        goto out;
    }
out:
    if (rc < 0) { dg_spool_close(s); s = NULL; }
    *out = s;
    return rc;
}

void dg_spool_close(dg_spool_t *s)
{
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    free(s->buf);
    free(s);
}

int dg_spool_append(dg_spool_t *s, const dg_record_t *recs, size_t n)
{
    if (n == 0) return 0;
    int rc = reserve(s, n * BLOCK_MAX);
    if (rc) return rc;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += encode(s->buf + len, &recs[i]);
    if (s->end - HDR_SIZE + len > s->max) return -ENOSPC;
    ssize_t w = pwrite(s->fd, s->buf, len, (off_t)s->end);
    if (w != (ssize_t)len) {
        rc = w < 0 ? -errno : -EIO;
        if (ftruncate(s->fd, (off_t)s->end) < 0) { /* the torn part is cut at the next open */ }
        return rc;
    }
    s->end += len;
    s->pending += n;
    return 0;
}

long dg_spool_read(dg_spool_t *s, dg_record_t *out, size_t max, size_t *earlier, char *err, size_t errlen)
{
    *earlier = 0;
    s->last_n = s->last_earlier = 0;
    s->last_end = s->rd;
    if (s->rd >= s->end || max == 0) return 0;
    uint64_t left = s->end - s->rd;
    size_t want = left < (uint64_t)max * BLOCK_MAX ? (size_t)left : max * BLOCK_MAX;
    int rc = reserve(s, want);
    if (rc) return rc;
    ssize_t got = pread(s->fd, s->buf, want, (off_t)s->rd);
    if (got < 0) {
        snprintf(err, errlen, "cannot read the spool %s: %s", s->path, strerror(errno));
        return -errno;
    }
    size_t pos = 0, n = 0, ne = 0;
    long b = 0;
    while (n < max && (b = check_block(s->buf + pos, (size_t)got - pos)) > 0) {
        if (s->rd + pos < s->earlier_end) ne++;
        decode(s->buf + pos, &out[n++]);
        pos += (size_t)b;
    }
    if (n < max && s->rd + pos < s->end) {
        /* damaged (or cut by someone else) since it was written: the valid
         * part ends here */
        uint64_t at = s->rd + pos;
        snprintf(err, errlen, "spool %s: damaged block at offset %" PRIu64 "; cut off %" PRIu64
                 " bytes from there (those records are lost; they were never acked)", s->path, at, s->end - at);
        if (ftruncate(s->fd, (off_t)at) < 0) { /* the next open cuts it again */ }
        s->end = at;
        if (s->earlier_end > at) s->earlier_end = at;
        s->pending = n;
        s->earlier = ne;
    }
    s->last_end = s->rd + pos;
    s->last_n = n;
    s->last_earlier = ne;
    *earlier = ne;
    return (long)n;
}

int dg_spool_consume(dg_spool_t *s)
{
    s->rd = s->last_end;
    s->pending -= s->last_n <= s->pending ? s->last_n : s->pending;
    s->earlier -= s->last_earlier <= s->earlier ? s->last_earlier : s->earlier;
    s->last_n = s->last_earlier = 0;
    if (s->rd < s->end) return 0;
    /* drained: start the file over, as this run's */
    if (ftruncate(s->fd, HDR_SIZE) < 0) return -errno;
    s->rd = s->end = s->earlier_end = s->last_end = HDR_SIZE;
    s->pending = s->earlier = 0;
    return write_header(s);
}

uint64_t dg_spool_pending_records(const dg_spool_t *s) { return s->pending; }
uint64_t dg_spool_pending_bytes(const dg_spool_t *s)   { return s->end - s->rd; }
uint64_t dg_spool_earlier_records(const dg_spool_t *s) { return s->earlier; }
uint64_t dg_spool_file_run(const dg_spool_t *s)        { return s->file_run; }
const char *dg_spool_path(const dg_spool_t *s)         { return s->path; }
