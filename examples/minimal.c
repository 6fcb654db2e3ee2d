/* minimal.c - the smallest useful drone program on libdronegate: one sample
 * per 100 ms from a (pretend) autopilot, the library on its own thread,
 * commands acknowledged, a 5 s flush at the end.
 *
 *   cc -o minimal minimal.c $(pkg-config --cflags --libs dronegate)
 *   ./minimal ws://127.0.0.1:8080 drone-1 50       # URL, drone id, samples
 *   (token, when the gateway has auth on: DRONEGATE_TOKEN=...)
 */
#include <dronegate/client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void on_command(void *user, const dg_client_command_t *cmd)
{
    dg_client_t **c = user;
    printf("command %s: %s %s\n", cmd->id, cmd->name, cmd->args_json);
    dg_client_command_ack(*c, cmd->id, "accepted", NULL);
}

static void on_error(void *user, const dg_client_error_t *e)
{
    (void)user;
    fprintf(stderr, "dronegate: %s: %s\n", e->code, e->message);
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: %s URL DRONE_ID [SAMPLES]\n", argv[0]); return 2; }
    dg_client_t *c = NULL;
    dg_client_config_t cfg;
    dg_client_config_init(&cfg);
    cfg.url = argv[1];
    cfg.drone_id = argv[2];
    cfg.token = getenv("DRONEGATE_TOKEN");
    cfg.cb.on_command = on_command;
    cfg.cb.on_error = on_error;
    cfg.user = &c;
    char err[256];
    if (!(c = dg_client_open(&cfg, err, sizeof err)) || dg_client_start(c)) {
        fprintf(stderr, "dronegate: %s\n", c ? "cannot start" : err);
        return 1;
    }
    int n = argc > 3 ? atoi(argv[3]) : 100;
    for (int i = 0; i < n; i++) {
        dg_sample_t s = { .latitude = 47.3977 + i * 1e-5, .longitude = 8.5456, .altitude = 488.0,
                          .battery = 90.0, .has = DG_HAS_BATTERY, .status = "airborne" };
        int rc = dg_client_send(c, &s, NULL);
        if (rc < 0) fprintf(stderr, "dronegate: sample %d not queued: %s\n", i, dg_client_strerror(rc));
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
    }
    long lost = dg_client_close(c, 5000);   /* wait up to 5 s for the last acks */
    printf("%d samples sent, %ld not acknowledged\n", n, lost);
    return lost ? 3 : 0;
}
