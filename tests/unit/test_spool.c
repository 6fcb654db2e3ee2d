/* test_spool.c - unit tests of the on-disk spool (src/pipeline/spool.c):
 * write, reopen, replay in order, runs (earlier-run records counted apart),
 * torn and corrupt tails, damage found while replaying, full spool, and
 * files of another format or version. Files live in a mkdtemp directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "pipeline/batch.h"
#include "pipeline/spool.h"

static char dir[64], path[128];

static void fresh(void)
{
    snprintf(dir, sizeof dir, "/tmp/dg-spool-XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
    snprintf(path, sizeof path, "%s/backlog.spool", dir);
}

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

static dg_record_t rec(const char *id, uint64_t seq)
{
    dg_record_t r;
    dg_record_init(&r);
    r.seq = seq;
    r.flags = DG_REC_HAS_SEQ | DG_REC_HAS_TS;
    r.ts_ms = 1700000000000 + (int64_t)seq;
    r.recv_us = 1700000000000000 + (int64_t)seq;
    r.lat = 47.5 + (double)seq / 1000;
    r.lon = -122.25;
    r.alt = 100.5;
    r.origin = dg_origin_pack(3, 1000 + (uint32_t)seq, 7);
    r.drone_id_len = (uint8_t)snprintf(r.drone_id, sizeof r.drone_id, "%s", id);
    if (seq % 2) {
        r.flags |= DG_REC_HAS_STATUS | DG_REC_HAS_BATTERY;
        r.status_len = (uint8_t)snprintf(r.status, sizeof r.status, "ok-%u", (unsigned)seq);
        r.battery = 0.75;
    }
    return r;
}

static off_t file_size(void)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static dg_spool_t *open_ok(uint64_t run, char *note, size_t notelen)
{
    dg_spool_t *s = NULL;
    char err[256] = "";
    int rc = dg_spool_open(path, 1 << 20, run, &s, err, sizeof err, note, notelen);
    if (rc) fprintf(stderr, "dg_spool_open: %d %s\n", rc, err);
    return s;
}

static void append_n(dg_spool_t *s, uint64_t from, uint64_t to)
{
    for (uint64_t q = from; q <= to; q++) {
        dg_record_t r = rec("d-1", q);
        if (dg_spool_append(s, &r, 1)) { fprintf(stderr, "append failed\n"); exit(1); }
    }
}

TEST(write_reopen_replay)
{
    fresh();
    char note[256];
    dg_spool_t *s = open_ok(111, note, sizeof note);
    ASSERT(s);
    ASSERT_STR_EQ(note, "");
    ASSERT_U64_EQ(dg_spool_file_run(s), 111);
    dg_record_t in[3] = { rec("alpha", 1), rec("b.e_t-a", 2), rec("alpha", 3) };
    ASSERT_EQ(dg_spool_append(s, in, 3), 0);
    ASSERT_U64_EQ(dg_spool_pending_records(s), 3);
    ASSERT_U64_EQ(dg_spool_earlier_records(s), 0);
    dg_spool_close(s);

    /* a new run finds them: all of an earlier run */
    s = open_ok(222, note, sizeof note);
    ASSERT(s);
    ASSERT_STR_EQ(note, "");
    ASSERT_U64_EQ(dg_spool_file_run(s), 111);
    ASSERT_U64_EQ(dg_spool_pending_records(s), 3);
    ASSERT_U64_EQ(dg_spool_earlier_records(s), 3);
    append_n(s, 4, 5);                 /* this run's, after them */
    dg_record_t out[10];
    char err[256] = "";
    size_t earlier = 99;
    ASSERT_EQ(dg_spool_read(s, out, 10, &earlier, err, sizeof err), 5);
    ASSERT_EQ(earlier, 3);
    ASSERT_STR_EQ(err, "");
    for (int i = 0; i < 5; i++) ASSERT_U64_EQ(out[i].seq, (uint64_t)i + 1);
    for (int i = 0; i < 3; i++) {      /* field by field round trip */
        ASSERT_STR_EQ(out[i].drone_id, in[i].drone_id);
        ASSERT_EQ(out[i].drone_id_len, in[i].drone_id_len);
        ASSERT_STR_EQ(out[i].status, in[i].status);
        ASSERT_EQ(out[i].status_len, in[i].status_len);
        ASSERT_EQ(out[i].flags, in[i].flags);
        ASSERT_EQ(out[i].ts_ms, in[i].ts_ms);
        ASSERT_EQ(out[i].recv_us, in[i].recv_us);
        ASSERT_DBL_EQ(out[i].lat, in[i].lat);
        ASSERT_DBL_EQ(out[i].lon, in[i].lon);
        ASSERT_DBL_EQ(out[i].alt, in[i].alt);
        ASSERT_U64_EQ(out[i].origin, in[i].origin);
        ASSERT_EQ(isnan(out[i].speed), 1);
        ASSERT_EQ(isnan(out[i].battery), isnan(in[i].battery));
    }
    /* not consumed: read again gives the same */
    ASSERT_EQ(dg_spool_read(s, out, 2, &earlier, err, sizeof err), 2);
    ASSERT_EQ(earlier, 2);
    ASSERT_EQ(dg_spool_consume(s), 0);
    ASSERT_U64_EQ(dg_spool_pending_records(s), 3);
    ASSERT_U64_EQ(dg_spool_earlier_records(s), 1);
    ASSERT_EQ(dg_spool_read(s, out, 10, &earlier, err, sizeof err), 3);
    ASSERT_EQ(earlier, 1);
    ASSERT_U64_EQ(out[0].seq, 3);
    ASSERT_U64_EQ(out[2].seq, 5);
    ASSERT_EQ(dg_spool_consume(s), 0);
    /* drained: back to a bare header that names this run */
    ASSERT_U64_EQ(dg_spool_pending_records(s), 0);
    ASSERT_U64_EQ(dg_spool_pending_bytes(s), 0);
    ASSERT_EQ(dg_spool_read(s, out, 10, &earlier, err, sizeof err), 0);
    ASSERT_EQ(file_size(), 32);
    ASSERT_U64_EQ(dg_spool_file_run(s), 222);
    append_n(s, 6, 6);
    dg_spool_close(s);
    s = open_ok(333, note, sizeof note);
    ASSERT(s);
    ASSERT_U64_EQ(dg_spool_file_run(s), 222);
    ASSERT_U64_EQ(dg_spool_earlier_records(s), 1);
    dg_spool_close(s);
    cleanup();
}

TEST(torn_tail_keeps_valid_prefix)
{
    fresh();
    dg_spool_t *s = open_ok(1, NULL, 0);
    ASSERT(s);
    append_n(s, 1, 5);
    off_t full = file_size();
    dg_spool_close(s);
    ASSERT_EQ(truncate(path, full - 10), 0);   /* crash in the middle of the last append */
    char note[256] = "x";
    s = open_ok(2, note, sizeof note);
    ASSERT(s);
    ASSERT(strstr(note, "torn") != NULL);
    ASSERT_U64_EQ(dg_spool_pending_records(s), 4);
    ASSERT(file_size() < full - 10);           /* the torn block is cut off */
    append_n(s, 6, 6);                          /* appends go after the valid part */
    dg_record_t out[10];
    char err[256] = "";
    size_t earlier;
    ASSERT_EQ(dg_spool_read(s, out, 10, &earlier, err, sizeof err), 5);
    ASSERT_EQ(earlier, 4);
    ASSERT_U64_EQ(out[3].seq, 4);
    ASSERT_U64_EQ(out[4].seq, 6);
    dg_spool_close(s);
    /* reported once: a second open finds nothing to cut */
    s = open_ok(3, note, sizeof note);
    ASSERT(s);
    ASSERT_STR_EQ(note, "");
    dg_spool_close(s);
    cleanup();
}

TEST(corrupt_block_ends_the_valid_part)
{
    fresh();
    dg_spool_t *s = open_ok(1, NULL, 0);
    ASSERT(s);
    append_n(s, 1, 2);
    off_t two = file_size();
    append_n(s, 3, 5);
    dg_spool_close(s);
    int fd = open(path, O_RDWR);
    ASSERT(fd >= 0);
    unsigned char c;
    ASSERT_EQ(pread(fd, &c, 1, two + 20), 1);  /* a payload byte of the third block */
    c ^= 0x40;
    ASSERT_EQ(pwrite(fd, &c, 1, two + 20), 1);
    close(fd);
    char note[256] = "";
    s = open_ok(2, note, sizeof note);
    ASSERT(s);
    ASSERT(note[0] != '\0');
    ASSERT_U64_EQ(dg_spool_pending_records(s), 2);
    ASSERT_EQ(file_size(), two);
    dg_spool_close(s);
    cleanup();
}

TEST(damage_found_while_replaying)
{
    fresh();
    dg_spool_t *s = open_ok(1, NULL, 0);
    ASSERT(s);
    append_n(s, 1, 1);
    off_t one = file_size();
    append_n(s, 2, 3);
    int fd = open(path, O_RDWR);
    ASSERT(fd >= 0);
    unsigned char z[4] = { 0xff, 0xff, 0xff, 0x7f };   /* length of block 2 out of range */
    ASSERT_EQ(pwrite(fd, z, 4, one), 4);
    close(fd);
    dg_record_t out[10];
    char err[256] = "";
    size_t earlier;
    ASSERT_EQ(dg_spool_read(s, out, 10, &earlier, err, sizeof err), 1);
    ASSERT(strstr(err, "damaged") != NULL);
    ASSERT_U64_EQ(out[0].seq, 1);
    ASSERT_EQ(dg_spool_consume(s), 0);
    ASSERT_U64_EQ(dg_spool_pending_records(s), 0);
    ASSERT_EQ(file_size(), 32);
    dg_spool_close(s);
    cleanup();
}

TEST(full_spool_refuses_and_writes_nothing)
{
    fresh();
    dg_spool_t *s = NULL;
    char err[256], note[256];
    ASSERT_EQ(dg_spool_open(path, 250, 1, &s, err, sizeof err, note, sizeof note), 0);
    dg_record_t r[2] = { rec("d", 1), rec("d", 2) };   /* ~110 bytes each */
    ASSERT_EQ(dg_spool_append(s, r, 2), 0);
    ASSERT_EQ(dg_spool_append(s, r, 2), -ENOSPC);
    ASSERT_U64_EQ(dg_spool_pending_records(s), 2);
    off_t size = file_size();
    ASSERT_EQ((uint64_t)size, 32 + dg_spool_pending_bytes(s));
    dg_spool_close(s);
    cleanup();
}

static int open_err(const void *bytes, size_t n, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, bytes, n) != (ssize_t)n) return 1;
    close(fd);
    dg_spool_t *s = (dg_spool_t *)1;
    int rc = dg_spool_open(path, 1 << 20, 9, &s, err, errlen, NULL, 0);
    if (s) dg_spool_close(s);
    return rc;
}

TEST(other_format_or_version_is_a_clear_error)
{
    fresh();
    char err[256];
    /* a valid header, then the version changed */
    dg_spool_t *s = open_ok(5, NULL, 0);
    ASSERT(s);
    dg_spool_close(s);
    unsigned char h[32];
    int fd = open(path, O_RDONLY);
    ASSERT_EQ(read(fd, h, 32), 32);
    close(fd);
    h[8] = 2;
    ASSERT_EQ(open_err(h, 32, err, sizeof err), -EPROTO);
    ASSERT(strstr(err, "version 2") != NULL);
    ASSERT(strstr(err, "reads version 1") != NULL);
    h[8] = 1;
    h[17] ^= 1;   /* run id changed: header checksum fails */
    ASSERT_EQ(open_err(h, 32, err, sizeof err), -EPROTO);
    ASSERT(strstr(err, "checksum") != NULL);
    /* the format of earlier releases (raw structs) */
    char old[64] = "dronegate-spool-1 208";
    ASSERT_EQ(open_err(old, sizeof old, err, sizeof err), -EPROTO);
    ASSERT(strstr(err, "not a dronegate spool") != NULL);
    ASSERT_EQ(open_err("hello", 5, err, sizeof err), -EPROTO);
    /* the file was left alone */
    ASSERT_EQ(file_size(), 5);
    /* empty (crash right after creating it): a new spool */
    ASSERT_EQ(open_err("", 0, err, sizeof err), 0);
    ASSERT_EQ(file_size(), 32);
    ASSERT_EQ(open_err("DGSP", 4, err, sizeof err), 0);   /* torn header */
    cleanup();
}

TEST(origin_token_round_trips)
{
    uint64_t o = dg_origin_pack(255, DG_ORIGIN_SLOT_MAX, 0xfffffffeu);
    ASSERT_EQ(dg_origin_worker(o), 255);
    ASSERT_EQ(dg_origin_slot(o), DG_ORIGIN_SLOT_MAX);
    ASSERT_U64_EQ(dg_origin_gen(o), 0xfffffffeu);
    o = dg_origin_pack(2, 12345, 1);
    ASSERT_EQ(dg_origin_worker(o), 2);
    ASSERT_EQ(dg_origin_slot(o), 12345);
    ASSERT_EQ(dg_origin_gen(o), 1);
}

int main(void)
{
    RUN(write_reopen_replay);
    RUN(torn_tail_keeps_valid_prefix);
    RUN(corrupt_block_ends_the_valid_part);
    RUN(damage_found_while_replaying);
    RUN(full_spool_refuses_and_writes_nothing);
    RUN(other_format_or_version_is_a_clear_error);
    RUN(origin_token_round_trips);
    return check_summary("spool");
}
