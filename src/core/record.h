/* record.h - one telemetry sample, the unit that flows through dronegate.
 *
 * socket -> frame -> decode -> validate -> dg_record_t -> batch -> store -> ack
 *
 * A record is a fixed-size value (no pointers), so batches are plain arrays
 * that are filled by a worker, handed to the store writer and handed back,
 * without any allocation per message.
 */
#ifndef DG_RECORD_H
#define DG_RECORD_H

#include <stdint.h>
#include <stddef.h>
#include <math.h>

#define DG_DRONE_ID_MAX 64   /* contract: 1-64 chars of [A-Za-z0-9._-] */
#define DG_STATUS_MAX   32   /* contract: status string <= 32 chars */

/* flags */
#define DG_REC_HAS_SEQ     (1u << 0)
#define DG_REC_HAS_SPEED   (1u << 1)
#define DG_REC_HAS_HEADING (1u << 2)
#define DG_REC_HAS_CLIMB   (1u << 3)
#define DG_REC_HAS_BATTERY (1u << 4)
#define DG_REC_HAS_STATUS  (1u << 5)
#define DG_REC_HAS_TS      (1u << 6)  /* timestamp came from the drone */
/* Set by a store's write_batch(): this record's (drone_id, seq) is already
 * stored with another timestamp (a reused seq): not stored, never acked,
 * reported to the drone as seq_reused. */
#define DG_REC_REJECTED_REUSED (1u << 7)

typedef struct dg_record {
    uint64_t seq;          /* valid when DG_REC_HAS_SEQ */
    int64_t  ts_ms;        /* sample time, ms since Unix epoch (receive time if absent) */
    int64_t  recv_us;      /* server receive time, us since Unix epoch (CLOCK_REALTIME) */
    double   lat, lon, alt;             /* degrees, degrees, metres AMSL */
    double   speed, heading, climb, battery; /* NAN when absent */
    uint32_t flags;        /* DG_REC_HAS_* */
    uint64_t origin;       /* who to ack when durable: opaque below the pipeline
                              (packed by pipeline/batch.h dg_origin_pack) */
    uint8_t  drone_id_len;
    uint8_t  status_len;
    char     drone_id[DG_DRONE_ID_MAX + 1]; /* NUL-terminated */
    char     status[DG_STATUS_MAX + 1];     /* NUL-terminated, "" when absent */
} dg_record_t;

/* Clear a record: every optional field absent. */
static inline void dg_record_init(dg_record_t *r)
{
    r->seq = 0; r->ts_ms = 0; r->recv_us = 0;
    r->lat = r->lon = r->alt = 0.0;
    r->speed = r->heading = r->climb = r->battery = NAN;
    r->flags = 0; r->origin = 0;
    r->drone_id_len = 0; r->status_len = 0;
    r->drone_id[0] = '\0'; r->status[0] = '\0';
}

/* 1 when id[0..len) is a valid drone id per the contract, else 0. */
static inline int dg_drone_id_valid(const char *id, size_t len)
{
    if (len < 1 || len > DG_DRONE_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

#endif
