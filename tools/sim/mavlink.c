/* mavlink.c - dronegate-sim --transport mavlink: every drone is a MAVLink
 * vehicle over UDP (its own socket, so the gateway sees (address, sysid);
 * sysid 1 + i % 255). HEARTBEAT at 1 Hz; per message one datagram holding
 * GLOBAL_POSITION_INT + SYS_STATUS + VFR_HUD (three packets), at --rate per
 * vehicle (0 = as fast as the socket takes them), for --duration seconds,
 * one thread. UDP has no acks: the report reads the gateway's /metrics at
 * --url before and after (rows received from MAVLink, rows stored) and
 * prints what the gateway took of what was sent.
 */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mavlink/mavlink.h"

typedef struct { double udp_rows, stored, ok; } gw_metrics_t;

/* GET /metrics over plain HTTP/1.0 (the URL's address): the counters we compare. */
static int scrape(const sim_config_t *c, gw_metrics_t *m)
{
    memset(m, 0, sizeof *m);
    int fd = socket(c->dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)&c->dst, c->dst_len) < 0) { if (fd >= 0) close(fd); return -1; }
    char req[400];
    int n = snprintf(req, sizeof req, "GET %s/metrics HTTP/1.0\r\nHost: %s\r\n\r\n", c->path, c->hosthdr);
    if (write(fd, req, (size_t)n) != n) { close(fd); return -1; }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { close(fd); return -1; }
    ssize_t r;
    while (len < cap && (r = read(fd, buf + len, cap - len)) > 0) len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    for (char *line = buf; line && *line; ) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        double v;
        if (sscanf(line, "dronegate_messages_received_total{transport=\"udp\",format=\"mavlink\"} %lf", &v) == 1) m->udp_rows = v;
        else if (!strncmp(line, "dronegate_messages_stored_total{", 32) && sscanf(strchr(line, '}') + 1, "%lf", &v) == 1) m->stored = v;
        else if (sscanf(line, "dronegate_mavlink_packets_total{result=\"ok\"} %lf", &v) == 1) m->ok = v;
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    return 0;
}

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wrf(uint8_t *p, float f) { uint32_t u; memcpy(&u, &f, 4); wr32(p, u); }

typedef struct vehicle {
    int      fd;
    uint8_t  sysid, seq;
    int64_t  next_us, next_hb_us;
    double   lat0, lon0, phase;
} vehicle_t;

/* One telemetry datagram: GLOBAL_POSITION_INT + SYS_STATUS + VFR_HUD. */
static size_t telemetry(vehicle_t *v, uint8_t *out, double t)
{
    size_t n = 0;
    double a = v->phase + t * 0.05;
    uint8_t gp[28] = { 0 };
    wr32(gp, (uint32_t)(t * 1000));
    wr32(gp + 4, (uint32_t)(int32_t)lround((v->lat0 + 0.001 * cos(a)) * 1e7));
    wr32(gp + 8, (uint32_t)(int32_t)lround((v->lon0 + 0.001 * sin(a)) * 1e7));
    wr32(gp + 12, (uint32_t)(int32_t)(488000 + (int)(10000 * sin(a))));
    wr16(gp + 20, (uint16_t)(int16_t)300); wr16(gp + 22, (uint16_t)(int16_t)400);
    wr16(gp + 26, (uint16_t)((int)(fmod(a * 57.29578, 360.0) * 100 + 36000) % 36000));
    uint8_t ss[31] = { 0 };
    wr16(ss + 14, 12000);
    ss[30] = (uint8_t)(int8_t)(100 - (int)fmod(t, 100.0));
    uint8_t vf[20] = { 0 };
    wrf(vf, 5.0f); wrf(vf + 4, 5.0f); wrf(vf + 8, 488.0f); wrf(vf + 12, 0.5f);
    wr16(vf + 16, 90); wr16(vf + 18, 50);
    n += (size_t)dg_mav_encode_v2(out + n, v->seq++, v->sysid, 1, 33, gp, sizeof gp);
    n += (size_t)dg_mav_encode_v2(out + n, v->seq++, v->sysid, 1, 1, ss, sizeof ss);
    n += (size_t)dg_mav_encode_v2(out + n, v->seq++, v->sysid, 1, 74, vf, sizeof vf);
    return n;
}

static size_t heartbeat(vehicle_t *v, uint8_t *out)
{
    uint8_t p[9] = { 0, 0, 0, 0, 2 /* QUADROTOR */, 12 /* PX4 */, 0x81, 4 /* ACTIVE */, 3 };
    return (size_t)dg_mav_encode_v2(out, v->seq++, v->sysid, 1, 0, p, sizeof p);
}

int sim_mavlink_run(const sim_config_t *c)
{
    struct sockaddr_storage dst = c->dst;
    if (dst.ss_family == AF_INET) ((struct sockaddr_in *)&dst)->sin_port = htons((uint16_t)c->mavlink_port);
    else ((struct sockaddr_in6 *)&dst)->sin6_port = htons((uint16_t)c->mavlink_port);
    vehicle_t *vs = calloc(c->drones, sizeof *vs);
    if (!vs) { fprintf(stderr, "dronegate-sim: out of memory\n"); return 2; }
    for (uint32_t i = 0; i < c->drones; i++) {
        vehicle_t *v = &vs[i];
        v->fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (v->fd < 0 || connect(v->fd, (struct sockaddr *)&dst, c->dst_len) < 0) {
            fprintf(stderr, "dronegate-sim: udp socket %u: %s\n", i, strerror(errno));
            return 2;
        }
        v->sysid = (uint8_t)(1 + i % 255);
        v->lat0 = 47.0 + (double)(i % 100) * 0.01;
        v->lon0 = 8.0 + (double)(i / 100) * 0.01;
        v->phase = (double)i;
    }
    gw_metrics_t m0, m1;
    bool have = scrape(c, &m0) == 0;
    if (!have && !c->quiet) fprintf(stderr, "dronegate-sim: cannot read %s/metrics: the report shows what was sent only\n", c->url);
    uint8_t buf[512];
    uint64_t sent = 0, dgrams = 0, send_err = 0;
    int64_t start = now_us(), end = start + (int64_t)(c->duration * 1e6);
    int64_t period = c->rate > 0 ? (int64_t)(1e6 / c->rate) : 0;
    /* heartbeats first: the gateway makes vehicles of them */
    for (uint32_t i = 0; i < c->drones; i++) {
        size_t n = heartbeat(&vs[i], buf);
        if (send(vs[i].fd, buf, n, 0) < 0) send_err++;
        vs[i].next_hb_us = start + 1000000;
        vs[i].next_us = start + (period ? (int64_t)((double)period * i / c->drones) : 0) + 20000;
    }
    while (c->duration <= 0 || now_us() < end) {
        int64_t now = now_us(), soonest = now + 1000;
        for (uint32_t i = 0; i < c->drones; i++) {
            vehicle_t *v = &vs[i];
            if (now >= v->next_hb_us) {
                size_t n = heartbeat(v, buf);
                if (send(v->fd, buf, n, 0) < 0) send_err++;
                v->next_hb_us += 1000000;
            }
            if (now < v->next_us) { if (v->next_us < soonest) soonest = v->next_us; continue; }
            size_t n = telemetry(v, buf, (double)(now - start) / 1e6);
            if (send(v->fd, buf, n, 0) < 0) send_err++;
            else { sent++; dgrams++; }
            v->next_us = period ? v->next_us + period : now;
        }
        if (period && soonest > now) {
            struct timespec ts = { 0, (long)((soonest - now) * 1000) };
            nanosleep(&ts, NULL);
        }
    }
    double dur = (double)(now_us() - start) / 1e6;
    /* what the gateway took: wait until its counters stop moving (at most 5 s) */
    if (have) {
        gw_metrics_t prev = m0;
        for (int i = 0; i < 50; i++) {
            struct timespec ts = { 0, 100 * 1000000L };
            nanosleep(&ts, NULL);
            if (scrape(c, &m1)) { have = false; break; }
            if (i > 2 && m1.udp_rows == prev.udp_rows && m1.stored == prev.stored) break;
            prev = m1;
        }
    }
    double rows = have ? m1.udp_rows - m0.udp_rows : -1, stored = have ? m1.stored - m0.stored : -1;
    if (c->json)
        printf("{\"transport\":\"mavlink\",\"drones\":%u,\"duration_s\":%.3f,\"sent\":%llu,\"sent_per_s\":%.1f,"
               "\"send_errors\":%llu,\"gateway_rows\":%.0f,\"gateway_rows_per_s\":%.1f,\"stored\":%.0f,"
               "\"stored_per_s\":%.1f,\"packets_per_message\":3}\n",
               c->drones, dur, (unsigned long long)sent, (double)sent / dur, (unsigned long long)send_err,
               rows, rows / dur, stored, stored / dur);
    else
        printf("dronegate-sim (mavlink/udp): %u vehicles, %.1f s\n"
               "  sent %llu position datagrams (%.0f/s, 3 packets each)  send errors %llu\n"
               "  gateway: %.0f rows from MAVLink (%.0f/s), %.0f stored (%.0f/s)%s\n",
               c->drones, dur, (unsigned long long)sent, (double)sent / dur, (unsigned long long)send_err,
               rows, rows / dur, stored, stored / dur, have ? "" : " (no /metrics)");
    for (uint32_t i = 0; i < c->drones; i++) close(vs[i].fd);
    free(vs);
    (void)dgrams;
    return sent ? 0 : 1;
}
