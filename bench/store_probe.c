/* store_probe.c - a tiny command line on the store interface (store.h), so
 * the integration tests can drive every backend (sqlite:, postgresql:,
 * influxdb:, null:) directly, without the gateway in between. Not a
 * benchmark; it lives in bench/ because everything there is built by `make
 * all` (build/bench/store_probe).
 *
 *   store_probe URI last_seq DRONE
 *       prints "found N" (exit 0) or "none" (exit 0); an error exits 2
 *   store_probe URI write
 *       reads one record per stdin line: DRONE SEQ TS_MS LAT  (SEQ "-": no
 *       seq; TS_MS "-": no drone timestamp, the receive time is used), writes
 *       them as ONE write_batch() and prints one line per record: "stored" or
 *       "seq_reused" (DG_REC_REJECTED_REUSED set by the store)
 *   store_probe URI query DRONE
 *       prints the drone's history, one "SEQ TS_MS LAT" line per row
 *       (SEQ "-" when absent), oldest first
 *   store_probe URI latest DRONE
 *   store_probe URI latest_of DRONE   (the one-drone read; "unsupported" without it)
 *       the row latest() (the state restored at start) gives for DRONE,
 *       as "SEQ TS_MS LAT", or "none"
 *
 * Single-threaded; at most MAX_RECS records per write.
 */
#include "store/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RECS 100000

static int print_row(void *ud, const dg_record_t *r)
{
    (void)ud;
    if (r->flags & DG_REC_HAS_SEQ) printf("%" PRIu64, r->seq);
    else printf("-");
    printf(" %" PRId64 " %.17g\n", r->ts_ms, r->lat);
    return 0;
}

typedef struct latest_find {
    const char *id;
    int found;
} latest_find_t;

static int latest_row(void *ud, const dg_record_t *r)
{
    latest_find_t *f = ud;
    if (strcmp(r->drone_id, f->id) != 0) return 0;
    f->found++;
    return print_row(NULL, r);
}

static int read_records(dg_record_t *recs, size_t *n)
{
    char line[512];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    *n = 0;
    while (fgets(line, sizeof line, stdin)) {
        char id[128], seq[32], ts[32];
        double lat;
        if (line[0] == '\n' || line[0] == '#') continue;
        if (sscanf(line, "%127s %31s %31s %lf", id, seq, ts, &lat) != 4 || *n >= MAX_RECS ||
            !dg_drone_id_valid(id, strlen(id))) {
            fprintf(stderr, "store_probe: bad record line: %s", line);
            return -1;
        }
        dg_record_t *r = &recs[(*n)++];
        dg_record_init(r);
        snprintf(r->drone_id, sizeof r->drone_id, "%s", id);
        r->drone_id_len = (uint8_t)strlen(r->drone_id);
        r->recv_us = now_us;
        r->lat = lat;
        r->lon = 8.5;
        r->alt = 400.0;
        if (strcmp(seq, "-") != 0) {
            r->seq = strtoull(seq, NULL, 10);
            r->flags |= DG_REC_HAS_SEQ;
        }
        if (strcmp(ts, "-") != 0) {
            r->ts_ms = strtoll(ts, NULL, 10);
            r->flags |= DG_REC_HAS_TS;
        } else {
            r->ts_ms = now_us / 1000;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: store_probe URI last_seq DRONE | write | query DRONE | latest DRONE | latest_of DRONE\n");
        return 2;
    }
    const dg_store_ops_t *ops;
    dg_store_t *s = NULL;
    dg_record_t *recs = NULL;
    char err[1024] = "";
    int rc = 2;
    if (dg_store_open(argv[1], NULL, &ops, &s, err, sizeof err) < 0) {
        fprintf(stderr, "store_probe: %s\n", err);
        return 2;
    }
    if (!strcmp(argv[2], "last_seq") && argc == 4) {
        uint64_t seq = 0;
        int e = ops->last_seq(s, argv[3], &seq, err, sizeof err);
        if (e == 0) printf("found %" PRIu64 "\n", seq);
        else if (e == 1) printf("none\n");
        else { fprintf(stderr, "store_probe: last_seq: %d %s\n", e, err); goto out; }
        rc = 0;
    } else if (!strcmp(argv[2], "write") && argc == 3) {
        size_t n;
        if (!(recs = malloc(MAX_RECS * sizeof *recs)) || read_records(recs, &n) < 0) goto out;
        int e = ops->write_batch(s, recs, n, err, sizeof err);
        if (e < 0) { fprintf(stderr, "store_probe: write_batch: %d %s\n", e, err); goto out; }
        for (size_t i = 0; i < n; i++)
            printf("%s\n", (recs[i].flags & DG_REC_REJECTED_REUSED) ? "seq_reused" : "stored");
        rc = 0;
    } else if (!strcmp(argv[2], "query") && argc == 4) {
        dg_query_t q = { .drone_id = argv[3], .from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = MAX_RECS };
        int e = ops->query(s, &q, print_row, NULL, err, sizeof err);
        if (e < 0) { fprintf(stderr, "store_probe: query: %d %s\n", e, err); goto out; }
        rc = 0;
    } else if (!strcmp(argv[2], "latest") && argc == 4) {
        latest_find_t f = { argv[3], 0 };
        int e = ops->latest(s, latest_row, &f, err, sizeof err);
        if (e < 0) { fprintf(stderr, "store_probe: latest: %d %s\n", e, err); goto out; }
        if (!f.found) printf("none\n");
        rc = 0;
    } else if (!strcmp(argv[2], "latest_of") && argc == 4) {
        latest_find_t f = { argv[3], 0 };
        if (!ops->latest_of) {
            printf("unsupported\n");
        } else {
            int e = ops->latest_of(s, argv[3], latest_row, &f, err, sizeof err);
            if (e < 0) { fprintf(stderr, "store_probe: latest_of: %d %s\n", e, err); goto out; }
            if (!f.found) printf("none\n");
        }
        rc = 0;
    } else {
        fprintf(stderr, "store_probe: unknown command\n");
    }
out:
    free(recs);
    ops->close(s);
    fflush(stdout);
    return rc;
}
