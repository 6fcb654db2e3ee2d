/* fuzz_client_msg.c - libFuzzer target for what libdronegate parses: the
 * gateway's JSON messages (libclient/msg.c) and, for grpc://, its protobuf
 * ServerMessages (libclient/pb.c: the same input decoded both ways), and
 * what those messages do to
 * the store-and-forward queue (acks and session last_seq are controlled by
 * the server: no value may break the queue's invariants).
 *
 * Checks: no crash/leak/UB; every string field is NUL-terminated inside its
 * buffer; the args span lies inside the input; after every ack/session the
 * queue keeps head <= next, head - 1 <= tx < next, count <= max, and the
 * records still queued are the ones pushed, in order.
 *
 * Run: scripts/run-fuzz.sh (corpus fuzz/corpus/client_msg, dict fuzz/client_msg.dict).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

typedef struct fz {
    const uint8_t *in;
    size_t n;
    dgc_queue_t q;
    int64_t pushed;   /* ts of the next record = number pushed so far */
} fz_t;

static void check_queue(const dgc_queue_t *q)
{
    CHECK(q->head <= q->next);
    CHECK(q->tx + 1 >= q->head && q->tx < q->next);
    CHECK(dgc_q_count(q) <= q->max);
    int64_t prev = -1;
    for (uint64_t s = q->head; s < q->next; s++) {   /* order kept */
        CHECK(dgc_q_at(q, s)->ts_ms > prev);
        prev = dgc_q_at(q, s)->ts_ms;
    }
}

static void on_msg(void *ud, const dgc_msg_t *m)
{
    fz_t *f = ud;
    CHECK(memchr(m->code, 0, sizeof m->code));
    CHECK(memchr(m->field, 0, sizeof m->field));
    CHECK(memchr(m->message, 0, sizeof m->message));
    CHECK(memchr(m->id, 0, sizeof m->id));
    CHECK(memchr(m->name, 0, sizeof m->name));
    if (m->args) CHECK((const uint8_t *)m->args >= f->in && (const uint8_t *)m->args + m->args_len <= f->in + f->n);
    /* drive the queue: push a few, write some, then apply the message */
    for (int i = 0; i < 3; i++) {
        dgc_rec_t r;
        memset(&r, 0, sizeof r);
        r.ts_ms = f->pushed++;
        dgc_q_push(&f->q, &r, NULL);
    }
    size_t k = dgc_q_sendable(&f->q, 5);
    if (k) dgc_q_mark_sent(&f->q, f->q.tx + k);
    if (m->type == DGC_MSG_ACK) dgc_q_ack(&f->q, m->seq);
    else if (m->type == DGC_MSG_SESSION) { dgc_q_rewind(&f->q); dgc_q_session(&f->q, m->has_seq, m->seq); }
    else if (m->type == DGC_MSG_ERROR) dgc_q_rewind(&f->q);
    check_queue(&f->q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_t f = { .in = data, .n = size };
    dgc_q_init(&f.q, 7, size & 1 ? DG_FULL_DROP_OLDEST : DG_FULL_REFUSE_NEWEST);
    /* the parser gets exactly the input bytes (no NUL terminator) */
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    f.in = (const uint8_t *)copy;
    int r = dgc_parse_server(copy, size, on_msg, &f);
    CHECK(r >= -1);
    r = dgc_parse_server_pb((const uint8_t *)copy, size, on_msg, &f);
    CHECK(r == 1 || r == -1);
    free(copy);
    dgc_q_free(&f.q);
    return 0;
}
