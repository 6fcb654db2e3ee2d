/* minimal.h - what the network-path reference endpoints (ws_minimal.c,
 * grpc_minimal.c) share: a growable buffer, the --listen/--threads flags,
 * one SO_REUSEPORT listening socket per event-loop thread, and the threads.
 * Benchmark tools, not servers: on a setup error they exit. */
#ifndef DG_BENCH_MINIMAL_H
#define DG_BENCH_MINIMAL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static struct sockaddr_in listen_addr;

/* Make room for `need` bytes in *p (capacity *cap). 0 or -1. */
static int grow(void **p, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    void *q = realloc(*p, c);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* A non-blocking listening socket on listen_addr (SO_REUSEPORT: one per thread). */
static int minimal_listen(const char *name)
{
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ls < 0 || bind(ls, (struct sockaddr *)&listen_addr, sizeof listen_addr) || listen(ls, 4096)) {
        fprintf(stderr, "%s: listen: ", name);
        perror(NULL);
        exit(1);
    }
    return ls;
}

/* Parse [--listen HOST:PORT] [--threads N] into listen_addr, then run
 * `loop` on N threads (this one included). Returns the exit status. */
static int minimal_main(int argc, char **argv, const char *name, const char *def, void *(*loop)(void *))
{
    const char *listen = def;
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc) listen = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else { fprintf(stderr, "usage: %s [--listen HOST:PORT] [--threads N]\n", name); return 2; }
    }
    char host[64];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host || threads < 1 || threads > 64) {
        fprintf(stderr, "%s: bad --listen or --threads\n", name);
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &listen_addr.sin_addr) != 1) {
        fprintf(stderr, "%s: bad address %s\n", name, host);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_t th[64];
    for (int i = 1; i < threads; i++) pthread_create(&th[i], NULL, loop, NULL);
    loop(NULL);
    return 0;
}

#endif
