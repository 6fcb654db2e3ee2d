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
    char   grpc_listen[256];     /* not in this build: refused when set */
    char   mavlink_listen[256];  /* not in this build: refused when set */
    char   queue[1024];          /* not in this build: refused when set */
    char   auth_secret[512];     /* empty = auth off */
    char   operator_token[512];  /* REST + live + commands (command scope) */
    char   operator_read_token[512]; /* REST reads + live only (read scope) */
    char   allowed_origins[1024];/* comma list of Origins allowed besides same-origin */
    char   web_root[1024];       /* dashboard files */
    long   command_timeout_ms;   /* pending/sent/accepted -> expired */
    long   workers;              /* event-loop threads; 0 = number of cores */
    long   max_message;          /* bytes, per WebSocket message */
    long   max_connections;      /* total, all workers */
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
} dg_config_t;

/* Fill defaults, then the environment, then argv[first..argc). 0 on success,
 * 1 when --help was printed, -1 on error (message in err). */
int  dg_config_load(dg_config_t *c, int argc, char **argv, int first, char *err, size_t errlen);
void dg_config_usage(FILE *out);

/* Split "HOST:PORT" ("[::1]:80" too). 0 or -1. */
int  dg_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
