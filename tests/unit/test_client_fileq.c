/* test_client_fileq.c - libdronegate's file queue (libclient/fileq.c):
 * replay after a "crash" (the file reopened into a fresh queue), head
 * entries, the seq counter kept, a torn tail cut, a bad CRC stops the
 * replay, crash-safe rewrite and compaction. Links build/libdronegate.a. */
#include "check.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static char dir[64];
static char path[128];

static dgc_rec_t rec(int64_t ts)
{
    dgc_rec_t r;
    memset(&r, 0, sizeof r);
    r.ts_ms = ts;
    r.lat = 1.5;
    r.status_len = 2;
    memcpy(r.status, "ok", 2);
    return r;
}

/* What dg_client_send does: append, then push. */
static void put(dgc_fq_t *f, dgc_queue_t *q, int64_t ts)
{
    dgc_rec_t r = rec(ts);
    if (dgc_fq_append(f, q->next, &r)) abort();
    dgc_q_push(q, &r, NULL);
}

static off_t fsize(void)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static int reopen(dgc_fq_t *f, dgc_queue_t *q)
{
    char err[256];
    dgc_q_init(q, 1000, DG_FULL_REFUSE_NEWEST);
    int rc = dgc_fq_open(f, path, 0, q, err, sizeof err);
    if (rc) fprintf(stderr, "open: %s\n", err);
    return rc;
}

TEST(replay_after_crash)
{
    unlink(path);
    dgc_fq_t f;
    dgc_queue_t q;
    ASSERT_EQ(reopen(&f, &q), 0);
    ASSERT_EQ(dgc_q_count(&q), 0);
    for (int i = 0; i < 10; i++) put(&f, &q, 100 + i);
    dgc_q_mark_sent(&q, 10);
    dgc_q_ack(&q, 4);
    ASSERT_EQ(dgc_fq_head(&f, &q), 0);
    dgc_fq_close(&f);                         /* the process dies here */
    dgc_q_free(&q);
    ASSERT_EQ(fsize(), 11 * DGC_FQ_ENTRY);
    ASSERT_EQ(reopen(&f, &q), 0);
    ASSERT_EQ(f.replayed, 6);
    ASSERT_U64_EQ(q.head, 5);
    ASSERT_U64_EQ(q.next, 11);
    ASSERT_U64_EQ(q.hi_sent, 10);             /* may have been written: session rules apply */
    ASSERT_U64_EQ(q.tx, 4);                   /* resend from the head */
    for (uint64_t s = 5; s <= 10; s++) {
        ASSERT_EQ(dgc_q_at(&q, s)->ts_ms, 100 + (int64_t)s - 1);
        ASSERT_MEM_EQ(dgc_q_at(&q, s)->status, "ok", 2);
    }
    put(&f, &q, 999);                         /* the counter continues */
    ASSERT_U64_EQ(q.next, 12);
    dgc_fq_close(&f);
    dgc_q_free(&q);
}

TEST(counter_kept_when_everything_was_acked)
{
    unlink(path);
    dgc_fq_t f;
    dgc_queue_t q;
    reopen(&f, &q);
    for (int i = 0; i < 5; i++) put(&f, &q, i);
    dgc_q_mark_sent(&q, 5);
    dgc_q_ack(&q, 5);
    dgc_fq_head(&f, &q);
    dgc_fq_close(&f);
    dgc_q_free(&q);
    reopen(&f, &q);
    ASSERT_EQ(dgc_q_count(&q), 0);
    ASSERT_U64_EQ(q.next, 6);
    dgc_fq_close(&f);
    dgc_q_free(&q);
}

TEST(torn_tail_is_cut)
{
    unlink(path);
    dgc_fq_t f;
    dgc_queue_t q;
    reopen(&f, &q);
    for (int i = 0; i < 3; i++) put(&f, &q, i);
    dgc_fq_close(&f);
    dgc_q_free(&q);
    int fd = open(path, O_WRONLY | O_APPEND);
    char junk[50];
    memset(junk, 0x44, sizeof junk);          /* half an entry: a write torn by the crash */
    ASSERT_EQ(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    reopen(&f, &q);
    ASSERT_EQ(f.truncated, 50);
    ASSERT_EQ(dgc_q_count(&q), 3);
    ASSERT_EQ(fsize(), 3 * DGC_FQ_ENTRY);
    put(&f, &q, 3);                           /* appends after the cut */
    dgc_fq_close(&f);
    dgc_q_free(&q);
    reopen(&f, &q);
    ASSERT_EQ(dgc_q_count(&q), 4);
    ASSERT_EQ(dgc_q_at(&q, 4)->ts_ms, 3);
    dgc_fq_close(&f);
    dgc_q_free(&q);
}

TEST(bad_crc_stops_replay)
{
    unlink(path);
    dgc_fq_t f;
    dgc_queue_t q;
    reopen(&f, &q);
    for (int i = 0; i < 4; i++) put(&f, &q, i);
    dgc_fq_close(&f);
    dgc_q_free(&q);
    int fd = open(path, O_RDWR);
    char b = 0x7f;
    ASSERT_EQ(pwrite(fd, &b, 1, 2 * DGC_FQ_ENTRY + 40), 1);   /* flip a byte of the 3rd entry */
    close(fd);
    reopen(&f, &q);
    ASSERT_EQ(dgc_q_count(&q), 2);
    ASSERT_EQ(f.truncated, 2 * DGC_FQ_ENTRY);
    dgc_fq_close(&f);
    dgc_q_free(&q);
}

TEST(rewrite_and_compaction)
{
    unlink(path);
    dgc_fq_t f;
    dgc_queue_t q;
    reopen(&f, &q);
    /* a long run with a small backlog: the file must not grow without bound */
    for (int i = 0; i < 40000; i++) {
        put(&f, &q, i);
        if (i % 10 == 9) {
            dgc_q_mark_sent(&q, q.next - 1);
            dgc_q_ack(&q, q.next - 3);         /* 2 stay unacked */
            dgc_fq_head(&f, &q);
        }
    }
    ASSERT(f.rewrites >= 1);
    ASSERT(fsize() < (2 << 20) + 64 * DGC_FQ_ENTRY);
    for (int i = 0; i < 3; i++) put(&f, &q, 40000 + i);   /* never written */
    uint64_t head = q.head, next = q.next;
    /* a renumbering rewrites the file with the new seqs: the written ones
     * are dropped as stored, the 3 unwritten ones move after last_seq */
    dgc_q_rewind(&q);
    ASSERT_EQ(dgc_q_session(&q, 1, next + 100), 1);
    ASSERT_EQ(dgc_fq_rewrite(&f, &q), 0);
    ASSERT_EQ(dgc_q_count(&q), 3);
    ASSERT_EQ(fsize(), 4 * DGC_FQ_ENTRY);
    uint64_t h2 = q.head, n2 = q.next;
    ASSERT(h2 > head);
    dgc_fq_close(&f);
    dgc_q_free(&q);
    reopen(&f, &q);
    ASSERT_U64_EQ(q.head, h2);
    ASSERT_U64_EQ(q.next, n2);
    ASSERT_EQ(dgc_q_count(&q), 3);
    ASSERT_U64_EQ(h2, next + 101);
    ASSERT_EQ(dgc_q_at(&q, h2)->ts_ms, 40000);
    ASSERT_EQ(dgc_q_at(&q, h2 + 2)->ts_ms, 40002);
    dgc_fq_close(&f);
    dgc_q_free(&q);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ASSERT(access(tmp, F_OK) != 0);           /* no temp file left behind */
}

TEST(open_fails_clearly)
{
    dgc_fq_t f;
    dgc_queue_t q;
    char err[256] = "";
    dgc_q_init(&q, 10, 0);
    ASSERT_EQ(dgc_fq_open(&f, "/nonexistent-dir/q", 0, &q, err, sizeof err), -1);
    ASSERT(strstr(err, "/nonexistent-dir/q"));
    dgc_fq_close(&f);
    dgc_q_free(&q);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/dgc-fileq-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/queue", dir);
    RUN(replay_after_crash);
    RUN(counter_kept_when_everything_was_acked);
    RUN(torn_tail_is_cut);
    RUN(bad_crc_stops_replay);
    RUN(rewrite_and_compaction);
    RUN(open_fails_clearly);
    unlink(path);
    rmdir(dir);
    return check_summary("client_fileq");
}
