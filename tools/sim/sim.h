/* sim.h - dronegate-sim internals: configuration, drones, workers, stats.
 *
 * dronegate-sim plays N drones against a dronegate server over WebSocket
 * (dronegate.json.v1 or dronegate.pb.v1) or gRPC, every drone a libdronegate
 * client, and doubles as the load generator (or N MAVLink vehicles over UDP).
 * Files:
 *
 *   main.c     flags + DRONEGATE_SIM_* env vars, start-up, the report, signals
 *   worker.c   one epoll event loop per worker thread: timer heap, ready and
 *              dirty lists, shutdown phases (stop -> drain acks -> close)
 *   drive.c    ws-json (default), ws-pb and grpc: each drone is a libdronegate
 *              client (include/dronegate/client.h) driven from the worker's loop
 *   drone.c    the drone's samples (ring, window, batches, ack latency)
 *   proto.c    commands (goto/land/return_to_home) and their command_acks
 *   mission.c  flight physics: take-off, waypoints, return, landing, battery
 *   mavlink.c  --transport mavlink: MAVLink v2 vehicles over UDP
 *   hist.c     log-bucketed latency histogram (HDR style, ~1.6% resolution)
 *
 * Threads: the main thread parses flags, prints reports and handles signals;
 * it never touches a drone. Worker thread w owns drones i with i % T == w and
 * everything they point to. Shared between threads are only the counters in
 * sim_stats_t / sim_hist_t (one writer each: relaxed atomic load+store, which
 * are plain moves on x86) and sim_shared_t (phase word written by main).
 *
 * Names: sim_ prefix; this is a tool, not part of the dg_ library namespace.
 * From libdronegate-core it uses dg_drone_id_valid, dg_parse_double and the
 * MAVLink encoder (mavlink.c); from libdronegate the dg_client_* API.
 */
#ifndef SIM_H
#define SIM_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ config */

enum { SIM_TS_MS = 0, SIM_TS_RFC3339 = 1, SIM_TS_MIX = 2 };
/* --transport: WebSocket JSON, WebSocket dronegate.pb.v1, gRPC over h2c */
enum { SIM_TR_WS_JSON = 0, SIM_TR_WS_PB = 1, SIM_TR_GRPC = 2, SIM_TR_MAVLINK = 3 };

typedef struct sim_config {
    char     url[512];
    char     lib_url[600];      /* the URL given to libdronegate (numeric host) */
    char     host[256];         /* as written in the URL (no brackets) */
    char     hosthdr[300];      /* host:port (mavlink.c's Host: header) */
    char     path[256];         /* URL path prefix ("" or "/base"), no trailing '/' */
    char     query[256];        /* URL query without '?' ("" when none) */
    struct sockaddr_storage dst;
    socklen_t dst_len;
    uint32_t drones;
    double   rate;              /* messages per second per drone; 0 = window-bound */
    int64_t  tick_us;           /* rate mode: write due messages every tick (0: each at once) */
    uint32_t batch;             /* messages per frame */
    uint32_t window;            /* max unacked messages per drone */
    double   duration;          /* seconds; 0 = until a signal */
    double   drain;             /* seconds to wait for outstanding acks after stop */
    char     prefix[48];        /* drone id prefix */
    uint32_t id_width;          /* zero padding of the index */
    struct in_addr *src;        /* source addresses (IPv4), NULL = kernel's choice */
    uint32_t nsrc;
    char    *auth_secret;       /* NULL = no Authorization header */
    double   ramp;              /* new connections per second at start */
    int      json, quiet;
    int      airborne;          /* start each drone in flight, at cruise altitude */
    uint32_t threads;
    int      ts_mode;           /* SIM_TS_* */
    uint64_t seed;
    int      transport;         /* SIM_TR_* */
    int      mavlink_port;      /* --transport mavlink: the gateway's UDP port */
} sim_config_t;

/* --transport mavlink (mavlink.c): the whole run; exit status. */
int sim_mavlink_run(const sim_config_t *c);

/* Worker-visible shared state written by the main thread. */
enum { SIM_RUN = 0, SIM_STOP = 1, SIM_ABORT = 2 };
typedef struct sim_shared {
    _Atomic int  phase;         /* SIM_RUN -> SIM_STOP (drain+close) -> SIM_ABORT */
    int64_t      start_us;      /* monotonic start time, for the connect ramp */
} sim_shared_t;

/* ------------------------------------------------------------------- stats */

/* Single-writer counters: the owning worker increments, main reads. */
typedef _Atomic uint64_t sim_ctr_t;
static inline void sim_add(sim_ctr_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
static inline void sim_sub(sim_ctr_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}
static inline uint64_t sim_get(const sim_ctr_t *c)
{
    return atomic_load_explicit((sim_ctr_t *)c, memory_order_relaxed);
}

typedef struct sim_stats {
    sim_ctr_t open;             /* connections open now (gauge) */
    sim_ctr_t ever_open;        /* drones that completed a handshake at least once */
    sim_ctr_t handshakes;       /* successful handshakes (incl. reconnects) */
    sim_ctr_t connect_failures; /* TCP or handshake failures, timeouts */
    sim_ctr_t drops;            /* established connections lost (any cause) */
    sim_ctr_t generated;        /* samples created (seq assigned) */
    sim_ctr_t sent;             /* messages written for the first time */
    sim_ctr_t resent;           /* messages written again after a reconnect */
    sim_ctr_t acked;            /* messages covered by acks */
    sim_ctr_t frames;           /* telemetry frames */
    sim_ctr_t bytes_out, bytes_in;
    sim_ctr_t errors;           /* {"type":"error"} received */
    sim_ctr_t window_stalls;    /* samples skipped / fills stopped by a full window */
    sim_ctr_t closes;           /* server-initiated closes + drops (see close tables) */
    sim_ctr_t pings;
    sim_ctr_t cmd_received, cmd_accepted, cmd_rejected, cmd_done;
    sim_ctr_t unknown_msgs;     /* server messages we did not understand */
    sim_ctr_t live;             /* drones not finished (gauge) */
} sim_stats_t;

/* Latency histogram: value v (microseconds) goes to an exact bucket when
 * v < 128, else to (exponent, 64 sub-buckets): relative error <= 1/64. */
#define SIM_HIST_SUB     64
#define SIM_HIST_BUCKETS (128 + 40 * SIM_HIST_SUB)
typedef struct sim_hist {
    sim_ctr_t b[SIM_HIST_BUCKETS];
    sim_ctr_t count, sum, max;
} sim_hist_t;

/* A plain (non-atomic) copy for computing percentiles. */
typedef struct sim_hist_snap {
    uint64_t b[SIM_HIST_BUCKETS];
    uint64_t count, sum, max;
} sim_hist_snap_t;

void     sim_hist_add(sim_hist_t *h, uint64_t us);
void     sim_hist_snap_add(sim_hist_snap_t *s, const sim_hist_t *h); /* accumulate */
void     sim_hist_snap_sub(sim_hist_snap_t *out, const sim_hist_snap_t *a,
                           const sim_hist_snap_t *b);               /* a - b */
/* Value (us) at quantile q in [0,1]: middle of the bucket, clamped to max. */
uint64_t sim_hist_quantile(const sim_hist_snap_t *s, double q);
/* Bucket index of a value, and the range [lo, hi] a bucket covers (tests). */
uint32_t sim_hist_index(uint64_t us);
void     sim_hist_range(uint32_t idx, uint64_t *lo, uint64_t *hi);

/* Tables filled by a worker and read by main only after join. */
#define SIM_CODE_SLOTS 16
typedef struct sim_code_count {
    char     code[32];          /* error code or decimal close/HTTP code */
    uint64_t n;
} sim_code_count_t;
void sim_code_inc(sim_code_count_t *t, const char *code, size_t len);
void sim_code_add(sim_code_count_t *t, const char *code, size_t len, uint64_t n);

/* ---------------------------------------------------------------- mission */

enum {
    SIM_ST_LANDED = 0, SIM_ST_TAKEOFF, SIM_ST_AIRBORNE, SIM_ST_RETURNING,
    SIM_ST_LANDING, SIM_ST__N
};
enum { SIM_CMD_NONE = 0, SIM_CMD_RTH, SIM_CMD_LAND, SIM_CMD_GOTO };

#define SIM_MAX_WP 6
typedef struct sim_mission {
    double   home_lat, home_lon, ground;   /* degrees, metres AMSL of the (flat) ground */
    double   lat, lon, alt;                /* current position */
    double   speed, heading, climb, battery;
    double   cruise_agl, cruise_speed;
    double   wp_lat[SIM_MAX_WP], wp_lon[SIM_MAX_WP];
    double   tgt_lat, tgt_lon, tgt_alt;    /* goto target */
    double   wait_s;                       /* time left on the ground */
    int64_t  t_us;                         /* last integration time (monotonic) */
    uint64_t rng;
    uint8_t  phase;                        /* mission.c's internal phase */
    uint8_t  wp_n, wp_i;
    uint8_t  cmd;                          /* SIM_CMD_* in progress */
    uint8_t  after_takeoff;                /* phase to enter when cruise altitude is reached */
    uint8_t  cmd_event;                    /* 1: the command finished (read + clear by client) */
    const char *cmd_msg;                   /* message for that event ("" when none) */
} sim_mission_t;

void sim_mission_init(sim_mission_t *m, uint32_t idx, uint64_t seed);
/* Start in flight instead (--airborne): level at cruise altitude and speed,
 * somewhere along a new mission. Call right after sim_mission_init(). */
void sim_mission_airborne(sim_mission_t *m);
/* Integrate the flight up to now_us (monotonic). */
void sim_mission_step(sim_mission_t *m, int64_t now_us);
/* The SIM_ST_* status now. */
int  sim_mission_status(const sim_mission_t *m);
/* Start a command. 0 = accepted, -1 = rejected (*why says why). Commands
 * that are already satisfied set cmd_event at once. */
int  sim_mission_command(sim_mission_t *m, int cmd, double lat, double lon,
                         double alt, bool has_alt, const char **why);

/* ----------------------------------------------------------------- format */

/* One telemetry sample, quantised so that a resend is byte-identical. */
typedef struct sim_sample {
    int64_t  send_us;           /* monotonic time of the last transmission (first
                                 * one, rate mode: the time the sample was due) */
    int64_t  due_us;            /* monotonic time the sample was due (taken) */
    int64_t  frame_us;          /* rate mode: when its frame was complete (the due
                                 * time of the frame's last sample); else send_us */
    int64_t  ts_ms;             /* sample time, epoch ms */
    int32_t  lat_e7, lon_e7;    /* degrees * 1e7 */
    int32_t  alt_cm;
    uint16_t speed_cm;          /* m/s * 100 */
    uint16_t heading_cd;        /* degrees * 100, [0, 36000) */
    int16_t  climb_cm;          /* m/s * 100 */
    uint16_t battery_cp;        /* percent * 100, [0, 10000] */
    uint8_t  status;            /* SIM_ST_* */
    uint8_t  ts_rfc3339;        /* format the timestamp as RFC 3339 */
    uint64_t lseq;              /* the seq libdronegate gave it (drive.c) */
} sim_sample_t;

void sim_sample_from_mission(sim_sample_t *s, const sim_mission_t *m,
                             int64_t wall_ms, bool rfc3339);

/* ----------------------------------------------------------------- drones */

enum {
    SIM_D_IDLE = 0,      /* not yet started (waiting for its ramp slot) */
    SIM_D_CONNECTING,    /* the library connects (TCP, TLS, upgrade or call, session) */
    SIM_D_OPEN,
    SIM_D_CLOSING,       /* the library's close handshake */
    SIM_D_BACKOFF,       /* waiting to reconnect */
    SIM_D_DONE,          /* finished for good */
};

enum { SIM_T_CONN = 0, SIM_T_SAMPLE = 1 };
struct sim_drone;
typedef struct sim_timer {
    int64_t           at;   /* monotonic us */
    int32_t           idx;  /* position in the heap, -1 when not armed */
    uint8_t           kind; /* SIM_T_* */
    struct sim_drone *d;
} sim_timer_t;

struct sim_worker;
typedef struct sim_drone {
    struct sim_worker *w;
    uint32_t idx;               /* global drone index */
    uint32_t gen;               /* socket generation: stale epoll events are ignored */
    uint8_t  state;             /* SIM_D_* */
    uint8_t  in_ready, in_dirty;
    uint8_t  ts_rfc3339;        /* this drone's timestamp style */
    uint8_t  close_sent;        /* a close frame went out: no more data frames */
    uint8_t  closing_for_good;  /* that close was our shutdown close */
    uint8_t  ever_open;
    uint8_t  id_len;
    char     id[65];
    char     token[65];         /* hex HMAC, "" without auth */
    sim_timer_t t_conn;         /* connect/handshake/close timeout, reconnect */
    sim_timer_t t_sample;       /* next sample (rate mode) */
    int64_t  tick_phase;        /* --tick: this drone's offset in the tick */
    int64_t  t_sample_due;      /* when the next sample is due (the timer may fire later: --tick) */
    /* telemetry: seqs (acked_seq, gen_seq] are kept in ring[seq & (cap-1)] */
    sim_sample_t *ring;
    uint32_t ring_cap;
    uint64_t gen_seq;           /* last seq generated */
    uint64_t tx_seq;            /* last seq written on the current connection */
    uint64_t acked_seq;         /* highest seq acked (cumulative) */
    uint64_t hi_sent;           /* highest seq ever written (sent vs resent) */
    sim_mission_t m;
    char     cmd_id[96];        /* id of the command in progress (JSON-escaped form) */
    uint8_t  cmd_id_len;
    uint8_t  cmd_done_pending;  /* a "done" waits for the connection */
    const char *cmd_done_msg;
    /* drive.c: the drone is a libdronegate client driven from this
     * worker's epoll loop */
    struct dg_client *lc;
    int      lfd;               /* the client's fd registered with epoll, -1 none */
    uint8_t  lev;               /* POLLIN/POLLOUT bits registered */
    uint8_t  lgiveup;           /* refused in a way retrying cannot fix: shut down */
    uint8_t  lprev;             /* previous dg_client_state_t */
    uint64_t lconnects;         /* stats.connects at the last sync: a new socket */
    uint64_t lsent, lresent, lframes, lbin, lbout, lpings;   /* stats at the last sync */
} sim_drone_t;

typedef struct sim_worker {
    uint32_t            id;
    const sim_config_t *cfg;
    sim_shared_t       *sh;
    pthread_t           th;
    int                 ep;
    sim_drone_t        *drones;     /* owned */
    uint32_t            n;
    sim_timer_t       **heap;
    uint32_t            heap_len;
    sim_drone_t       **ready;      /* rate 0: drones that may generate now */
    uint32_t            ready_n;
    sim_drone_t       **dirty;      /* drones with output to flush this iteration */
    uint32_t            dirty_n;
    int64_t             now;        /* monotonic us, cached per iteration */
    int64_t             wall_ms;    /* realtime ms, cached per iteration */
    uint64_t            rng;
    int                 phase;      /* local view: SIM_RUN, SIM_STOP, SIM_ABORT */
    int64_t             drain_until, close_until;
    int                 closing;    /* close frames sent */
    uint32_t            live;       /* drones not in SIM_D_DONE */
    int                 log_budget; /* diagnostics printed by this worker */
    int                 err_log_budget; /* of which server error messages */
    uint64_t            log_seen[16];   /* hashes of messages already printed */
    _Atomic int         finished;
    sim_stats_t         st;
    sim_hist_t          hist;
    sim_hist_t          hist_frame; /* the same acks, latency from frame_us */
    sim_code_count_t    close_codes[SIM_CODE_SLOTS];
    sim_code_count_t    error_codes[SIM_CODE_SLOTS];
    sim_code_count_t    http_codes[SIM_CODE_SLOTS];
} sim_worker_t;

/* worker.c */
int   sim_worker_init(sim_worker_t *w, uint32_t id, const sim_config_t *cfg, sim_shared_t *sh);
void  sim_worker_free(sim_worker_t *w);
void *sim_worker_main(void *arg);
void  sim_timer_set(sim_worker_t *w, sim_timer_t *t, int64_t at);
void  sim_timer_cancel(sim_worker_t *w, sim_timer_t *t);
void  sim_mark_dirty(sim_worker_t *w, sim_drone_t *d);
void  sim_mark_ready(sim_worker_t *w, sim_drone_t *d);
uint64_t sim_rand(uint64_t *s);
void  sim_log(sim_worker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* drone.c */
int   sim_drone_init(sim_drone_t *d, sim_worker_t *w, uint32_t idx);   /* + sim_lib_init */
void  sim_drone_free(sim_drone_t *d);
void  sim_sample_timer(sim_worker_t *w, sim_drone_t *d);
void  sim_fill(sim_worker_t *w, sim_drone_t *d);         /* rate 0 */
void  sim_flush_partial_batch(sim_worker_t *w, sim_drone_t *d); /* at stop */
bool  sim_drone_drained(const sim_drone_t *d);            /* nothing left to wait for */
void  sim_on_ack(sim_worker_t *w, sim_drone_t *d, uint64_t seq);
void  sim_set_done(sim_worker_t *w, sim_drone_t *d);
void  sim_opened(sim_worker_t *w, sim_drone_t *d);   /* counters; the first starts sampling */
const char *sim_status_name(int st);   /* SIM_ST_* -> "airborne", ... */

/* drive.c: every drone is a libdronegate client (one implementation of the
 * client protocol) driven from its worker's epoll loop */
int   sim_lib_init(sim_worker_t *w, sim_drone_t *d);     /* dg_client_open */
void  sim_lib_free(sim_drone_t *d);
void  sim_lib_start(sim_worker_t *w, sim_drone_t *d);    /* its ramp slot */
void  sim_lib_timer(sim_worker_t *w, sim_drone_t *d);    /* t_conn: start, or the library's timeout */
void  sim_lib_run(sim_worker_t *w, sim_drone_t *d, uint32_t epoll_events); /* process + re-arm */
void  sim_lib_transmit(sim_worker_t *w, sim_drone_t *d, bool force);  /* ring -> dg_client_send */
void  sim_lib_close(sim_worker_t *w, sim_drone_t *d);    /* dg_client_shutdown */
void  sim_lib_abort(sim_worker_t *w, sim_drone_t *d);    /* dg_client_close(c, 0) */

/* proto.c */
void  sim_proto_command(sim_worker_t *w, sim_drone_t *d, const char *id, size_t id_len,
                        const char *name, size_t name_len, const char *args, size_t args_len);
void  sim_proto_cmd_ack(sim_worker_t *w, sim_drone_t *d, const char *id, size_t id_len,
                        const char *status, const char *message);
void  sim_proto_check_cmd(sim_worker_t *w, sim_drone_t *d);

/* Monotonic clock in microseconds. */
int64_t sim_mono_us(void);

#endif
