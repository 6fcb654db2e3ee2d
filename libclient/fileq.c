/* fileq.c - libdronegate's optional file queue: the store-and-forward queue
 * survives a crash or reboot of the drone's process.
 *
 * Format (little-endian host order; the file is not meant to move between
 * machines): a sequence of 104-byte entries
 *
 *     u32 magic   'DGQ1' sample entry | 'DGH1' head entry
 *     u32 crc     CRC-32 (zlib polynomial) of the 96 bytes that follow
 *     u64 seq     sample: its seq; head: every seq <= this one is gone
 *                 (acked, stored per the session message, or dropped-oldest)
 *     88  bytes   sample: the record (dgc_rec_t); head: zero
 *
 * Write order (crash safety): a sample's entry is write(2)-appended BEFORE
 * dg_client_send returns and before the sample can reach the network; so a
 * sample given to send is either in the file or send failed. With
 * queue_file_sync the entry is also fdatasync'ed first (survives power loss,
 * not only a process crash). Head entries are appended after the event and
 * never synced: losing one only means a resend, which the gateway stores at
 * most once (same seq, same timestamp).
 *
 * Replay: entries are read until the end or the first bad one (short, wrong
 * magic or CRC: a torn last write), and the file is truncated there. Samples
 * after the last head entry form the queue; seqs continue after the highest
 * seq seen, so a rebooted drone keeps its counter.
 *
 * Compaction: when the file holds more than twice the live entries plus
 * 1 MiB, it is rewritten as one head entry + the live samples into PATH.tmp,
 * fsync'ed, renamed over PATH, and the directory fsync'ed. The same rewrite
 * follows a renumbering (session message; internal.h).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC_SAMPLE 0x31515144u   /* "DGQ1" */
#define MAGIC_HEAD   0x31484744u   /* "DGH1" */

typedef struct entry {
    uint32_t  magic;
    uint32_t  crc;
    uint64_t  seq;
    dgc_rec_t rec;
} entry_t;

_Static_assert(sizeof(entry_t) == DGC_FQ_ENTRY, "entry size");

static uint32_t crc32_of(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= b[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void seal(entry_t *e)
{
    e->crc = crc32_of(&e->seq, sizeof *e - offsetof(entry_t, seq));
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

void dgc_fq_init(dgc_fq_t *f)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

int dgc_fq_open(dgc_fq_t *f, const char *path, int sync, dgc_queue_t *q, char *err, size_t el)
{
    dgc_fq_init(f);
    f->path = strdup(path);
    if (!f->path) { snprintf(err, el, "out of memory"); return -1; }
    f->sync = sync;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) { snprintf(err, el, "queue file %s: %s", path, strerror(errno)); return -1; }
    size_t max = q->max;
    q->max = SIZE_MAX;                       /* replay everything, even over queue_max */
    entry_t e;
    off_t good = 0;
    uint64_t maxseq = 0, headseq = 0;
    for (;;) {
        ssize_t r = pread(fd, &e, sizeof e, good);
        if (r != (ssize_t)sizeof e) break;
        if ((e.magic != MAGIC_SAMPLE && e.magic != MAGIC_HEAD) || e.seq > (UINT64_C(1) << 62) ||
            e.crc != crc32_of(&e.seq, sizeof e - offsetof(entry_t, seq)))
            break;
        good += (off_t)sizeof e;
        if (e.seq > maxseq) maxseq = e.seq;
        f->entries++;
        if (e.magic == MAGIC_HEAD) {
            if (e.seq > headseq) headseq = e.seq;
            dgc_q_forget(q, e.seq);
        } else if (e.seq > headseq) {
            if (e.seq != q->next) {          /* first sample (or a gap: start over there) */
                dgc_q_forget(q, q->next - 1);
                q->head = q->next = e.seq;
                q->tx = q->head - 1;
            }
            if (dgc_q_push(q, &e.rec, NULL) == DG_CLIENT_ENOMEM) {
                q->max = max;
                close(fd);
                snprintf(err, el, "out of memory replaying %s", path);
                return -1;
            }
        }
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size != good) {
        f->truncated = (uint64_t)(st.st_size - good);
        if (ftruncate(fd, good) < 0) { close(fd); snprintf(err, el, "truncate %s: %s", path, strerror(errno)); return -1; }
    }
    if (q->next <= maxseq) {                 /* keep the counter */
        q->head = q->next = maxseq + 1;
        q->tx = q->head - 1;
    }
    /* replayed samples may have been written before the crash: as far as the
     * session rules go, treat them as written (their seqs are ours) */
    q->hi_sent = q->next - 1;
    q->tx = q->head - 1;
    q->accepted = 0;
    q->max = max;
    f->replayed = dgc_q_count(q);
    f->fd = fd;
    f->bytes = (uint64_t)good;
    if (lseek(fd, 0, SEEK_END) < 0) { snprintf(err, el, "seek %s: %s", path, strerror(errno)); return -1; }
    return 0;
}

int dgc_fq_append(dgc_fq_t *f, uint64_t seq, const dgc_rec_t *r)
{
    entry_t e = { .magic = MAGIC_SAMPLE, .seq = seq, .rec = *r };
    seal(&e);
    if (write_all(f->fd, &e, sizeof e)) return -1;
    if (f->sync && fdatasync(f->fd)) return -1;
    f->bytes += sizeof e;
    f->entries++;
    return 0;
}

int dgc_fq_head(dgc_fq_t *f, const dgc_queue_t *q)
{
    entry_t e;
    memset(&e, 0, sizeof e);
    e.magic = MAGIC_HEAD;
    e.seq = q->head - 1;
    seal(&e);
    if (write_all(f->fd, &e, sizeof e)) return -1;
    f->bytes += sizeof e;
    f->entries++;
    if (f->bytes > 2 * (dgc_q_count(q) + 1) * sizeof e + (1u << 20)) return dgc_fq_rewrite(f, q);
    return 0;
}

int dgc_fq_rewrite(dgc_fq_t *f, const dgc_queue_t *q)
{
    size_t pl = strlen(f->path);
    char *tmp = malloc(pl + 5);
    if (!tmp) return -1;
    memcpy(tmp, f->path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) { free(tmp); return -1; }
    entry_t e;
    memset(&e, 0, sizeof e);
    e.magic = MAGIC_HEAD;
    e.seq = q->head - 1;
    seal(&e);
    int bad = write_all(fd, &e, sizeof e);
    uint64_t n = 1;
    for (uint64_t s = q->head; !bad && s < q->next; s++, n++) {
        entry_t x = { .magic = MAGIC_SAMPLE, .seq = s, .rec = *dgc_q_at(q, s) };
        seal(&x);
        bad = write_all(fd, &x, sizeof x);
    }
    if (bad || fsync(fd) || rename(tmp, f->path)) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    /* the rename must be durable too */
    char *d = strdup(f->path);
    if (d) {
        int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) { fsync(dfd); close(dfd); }
        free(d);
    }
    free(tmp);
    close(f->fd);
    f->fd = fd;
    f->bytes = n * sizeof e;
    f->entries = n;
    f->rewrites++;
    return 0;
}

void dgc_fq_close(dgc_fq_t *f)
{
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    free(f->path);
    f->path = NULL;
}
