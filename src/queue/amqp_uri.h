/* amqp_uri.h - the `--queue amqp://...` URI (CONTRACT.md "Queue").
 *
 *   amqp://USER:PASS@HOST:PORT/VHOST?queue=NAME[&type=quorum|stream|classic]
 *          [&exchange=X][&offset=first|last|next|N][&inflight=N]
 *
 * Defaults: guest:guest, localhost, port 5672, vhost "/" (an empty or missing
 * path; "%2F" is "/" too), queue "dronegate.telemetry", type quorum, no
 * exchange (the default exchange, routing key = queue name), offset "first"
 * (where a stream consumer starts), inflight 65536 (records the publisher
 * holds unconfirmed: published or waiting, its memory bound).
 * USER, PASS, VHOST and the query values are percent-decoded; a decoded NUL
 * or control character is refused. Unknown parameters are refused (a typo
 * must not silently fall back to a default).
 */
#ifndef DG_QUEUE_AMQP_URI_H
#define DG_QUEUE_AMQP_URI_H

#include <stddef.h>

typedef enum { DG_AMQP_QUORUM = 0, DG_AMQP_STREAM, DG_AMQP_CLASSIC } dg_amqp_qtype_t;

typedef struct dg_amqp_uri {
    char user[128];
    char pass[128];
    char host[256];
    int  port;
    char vhost[256];
    char queue[256];          /* AMQP short string: at most 255 bytes */
    char exchange[256];       /* "" = default exchange */
    dg_amqp_qtype_t type;
    char offset[24];          /* stream consumers: first | last | next | a number */
    long inflight;
} dg_amqp_uri_t;

/* 0, or -1 with a sentence in err. */
int dg_amqp_uri_parse(const char *uri, dg_amqp_uri_t *u, char *err, size_t errlen);

/* "quorum", "stream", "classic" */
const char *dg_amqp_qtype_name(dg_amqp_qtype_t t);

#endif
