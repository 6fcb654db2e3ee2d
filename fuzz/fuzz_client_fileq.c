/* fuzz_client_fileq.c - libFuzzer target for the other thing libdronegate
 * reads: its queue file (libclient/fileq.c), which a crash can leave torn
 * and a bad flash card can corrupt. The input is the file's content; it is
 * replayed into a queue, must leave the queue's invariants intact, be cut to
 * a whole number of entries, and survive an append + rewrite + replay round
 * trip with the same queue content.
 *
 * Run: scripts/run-fuzz.sh (corpus fuzz/corpus/client_fileq).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static char path[64];

static void check_queue(const dgc_queue_t *q)
{
    CHECK(q->head <= q->next);
    CHECK(q->tx + 1 >= q->head && q->tx < q->next);
    CHECK(q->hi_sent == q->next - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])   /* tmpfs: fsync is cheap there */
        snprintf(path, sizeof path, "%s/fuzz-client-fileq-%d", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) { close(fd); return 0; }
    close(fd);
    dgc_queue_t q;
    dgc_fq_t f;
    char err[256];
    dgc_q_init(&q, 4, DG_FULL_REFUSE_NEWEST);
    if (dgc_fq_open(&f, path, 0, &q, err, sizeof err) == 0) {
        check_queue(&q);
        struct stat st;
        CHECK(stat(path, &st) == 0 && st.st_size % DGC_FQ_ENTRY == 0 && (size_t)st.st_size <= size);
        dgc_rec_t r;
        memset(&r, 0, sizeof r);
        r.ts_ms = 42;
        if (q.next < UINT64_MAX - 2 && dgc_fq_append(&f, q.next, &r) == 0) {
            q.max = SIZE_MAX;
            dgc_q_push(&q, &r, NULL);
            CHECK(dgc_fq_rewrite(&f, &q) == 0);
            uint64_t head = q.head, next = q.next;
            dgc_fq_close(&f);
            dgc_queue_t q2;
            dgc_q_init(&q2, 4, DG_FULL_REFUSE_NEWEST);
            CHECK(dgc_fq_open(&f, path, 0, &q2, err, sizeof err) == 0);
            CHECK(q2.head == head && q2.next == next);
            for (uint64_t s = head; s < next; s++)
                CHECK(!memcmp(dgc_q_at(&q, s), dgc_q_at(&q2, s), sizeof(dgc_rec_t)));
            dgc_q_free(&q2);
        }
    }
    dgc_fq_close(&f);
    dgc_q_free(&q);
    unlink(path);
    return 0;
}
