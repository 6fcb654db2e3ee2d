/* config.h - every option is a command-line flag and an environment variable
 * (--store <=> DRONEGATE_STORE), so the same binary works in a shell and in
 * Kubernetes. Flags override the environment. Parsed once in main(), then
 * read-only (shared by every thread without locking).
 */
#ifndef DG_CONFIG_H
#define DG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct dg_config {
    char   listen[256];          /* HOST:PORT for HTTP + WebSocket */
    char   store[1024];          /* store URI */
    char   grpc_listen[256];     /* gRPC uplink HOST:PORT, "" = off */
    char   mavlink_listen[256];  /* broker URI (queue.h); empty = store directly */
    char   group[256];           /* dronegate sink: consumer group */
    char   queue[1024];          /* broker URI (queue.h); empty = store directly */
    char   auth_secret[512];     /* empty = auth off */
    char   operator_token[1025]; /* REST + live + commands (command scope); DG_OPERATOR_TOKEN_MAX chars */
    char   operator_read_token[1025]; /* REST reads + live only (read scope) */
    char   allowed_origins[1024];/* comma list of Origins allowed besides same-origin */
    char   allowed_hosts[1024];  /* comma list of Host names of the gateway (DNS-rebinding check) */
    char   web_root[1024];       /* dashboard files */
    long   command_timeout_ms;   /* pending/sent/accepted -> expired */
    long   workers;              /* event-loop threads; 0 = number of cores */
    long   max_message;          /* bytes, per WebSocket message */
    long   max_connections;      /* total, all workers */
    long   registry_max_offline; /* offline drones kept in memory (the store keeps all) */
    long   handshake_timeout_ms; /* TCP accept -> complete HTTP request */
    long   idle_timeout_ms;      /* no frame from a drone -> close 1001 */
    long   http_idle_timeout_ms; /* idle keep-alive HTTP connection -> closed */
    long   ping_interval_ms;     /* server ping after this much silence */
    long   ack_interval_ms;      /* acks coalesced per drone */
    long   commit_interval_ms;   /* min time between store transactions under light load */
    long   max_msg_rate;         /* messages/s per drone; 0 = unlimited */
    long   shutdown_timeout_ms;  /* drain deadline */
    long   batch_records;        /* records per store batch */
    long   batch_pool;           /* batches per worker (memory bound of the pipeline) */
    long   max_http_body;        /* bytes */
    char   spool_dir[1024];      /* on-disk backlog while the store fails; "" = memory only */
    long   spool_max_mb;         /* spool size limit */
    bool   fsync;                /* ack only after fsync */
    char   log_level[16];
    char   map_tiles[1024];      /* dashboard raster tiles URL template ({z}/{x}/{y}); "" = outline only */
    char   map_attribution[512]; /* shown under the tile layer */
    char   instance[65];         /* this gateway's name in logs, metrics, drone state, fleet routing (default: hostname) */
} dg_config_t;

/* Fill defaults, then the environment, then argv[first..argc). 0 on success,
 * 1 when --help or --version was printed, -1 on error (message in err). */
int  dg_config_load(dg_config_t *c, int argc, char **argv, int first, char *err, size_t errlen);
void dg_config_usage(FILE *out);

/* The dashboard's settings as a JSON object (GET /api/v1/config):
 * {"version","commit","map_tiles","map_attribution"}. 0 or -ENOMEM. */
struct dg_buf;
int  dg_config_web_json(const dg_config_t *c, struct dg_buf *b);

/* Default (hostname) or check --instance. 0, or -1 with err. */
int  dg_config_instance(dg_config_t *c, char *err, size_t errlen);

/* Split "HOST:PORT" ("[::1]:80" too). 0 or -1. */
int  dg_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
