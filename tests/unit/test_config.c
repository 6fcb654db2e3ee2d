/* test_config.c - unit tests of src/core/config.c: defaults (the README's
 * numbers), flags (--x v, --x=v, booleans), DRONEGATE_* environment
 * variables, flags over environment, and every error path (unknown flag,
 * missing value, out of range, not a number, too long, stray argument),
 * plus dg_split_hostport.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/config.h"

static dg_config_t cfg;
static char err[512];

#define LOAD(...) load((char *[]){ "dronegate", __VA_ARGS__, NULL })
static int load(char **argv)
{
    int argc = 0;
    while (argv[argc]) argc++;
    err[0] = '\0';
    return dg_config_load(&cfg, argc, argv, 1, err, sizeof err);
}
static int load0(void) { char *argv[] = { "dronegate", NULL }; err[0] = '\0'; return dg_config_load(&cfg, 1, argv, 1, err, sizeof err); }

TEST(defaults)
{
    ASSERT_EQ(load0(), 0);
    ASSERT_STR_EQ(cfg.listen, "0.0.0.0:8080");
    ASSERT_STR_EQ(cfg.store, "sqlite:./data/dronegate.db");
    ASSERT_STR_EQ(cfg.web_root, "./web");
    ASSERT_STR_EQ(cfg.log_level, "info");
    ASSERT_STR_EQ(cfg.auth_secret, "");
    ASSERT_STR_EQ(cfg.operator_token, "");
    ASSERT_STR_EQ(cfg.allowed_origins, "");
    ASSERT_STR_EQ(cfg.grpc_listen, "");
    ASSERT_STR_EQ(cfg.mavlink_listen, "");
    ASSERT_STR_EQ(cfg.queue, "");
    ASSERT_EQ(cfg.max_message, 1048576);
    ASSERT_EQ(cfg.max_msg_rate, 10000);
    ASSERT_EQ(cfg.max_connections, 0);
    ASSERT_EQ(cfg.ack_interval_ms, 0);   /* acks follow each commit (issue 8 §2) */
    ASSERT_EQ(cfg.commit_interval_ms, 0);
    ASSERT_EQ(cfg.command_timeout_ms, 30000);
    ASSERT_EQ(cfg.handshake_timeout_ms, 10000);
    ASSERT_EQ(cfg.idle_timeout_ms, 60000);
    ASSERT_EQ(cfg.ping_interval_ms, 20000);
    ASSERT_EQ(cfg.shutdown_timeout_ms, 10000);
    ASSERT_EQ(cfg.batch_records, 2048);
    ASSERT_EQ(cfg.batch_pool, 16);
    ASSERT_EQ(cfg.max_http_body, 65536);
    ASSERT_EQ(cfg.spool_max_mb, 1024);
    ASSERT_EQ(cfg.fsync, false);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    ASSERT_EQ(cfg.workers, n > 255 ? 255 : n);
}

TEST(flags_both_forms)
{
    ASSERT_EQ(LOAD("--listen", "127.0.0.1:9", "--store=null:", "--max-message", "64", "--fsync",
                   "--workers=3", "--allowed-origins", "https://a.example,https://b.example"), 0);
    ASSERT_STR_EQ(cfg.listen, "127.0.0.1:9");
    ASSERT_STR_EQ(cfg.store, "null:");
    ASSERT_EQ(cfg.max_message, 64);
    ASSERT_EQ(cfg.fsync, true);
    ASSERT_EQ(cfg.workers, 3);
    ASSERT_STR_EQ(cfg.allowed_origins, "https://a.example,https://b.example");
    /* a value may contain '=' */
    ASSERT_EQ(LOAD("--store=postgresql://h/db?sslmode=disable"), 0);
    ASSERT_STR_EQ(cfg.store, "postgresql://h/db?sslmode=disable");
    /* the last one wins */
    ASSERT_EQ(LOAD("--ack-interval", "5", "--ack-interval", "7"), 0);
    ASSERT_EQ(cfg.ack_interval_ms, 7);
    /* not-built flags are parsed (main refuses them) */
    ASSERT_EQ(LOAD("--grpc-listen", ":50051", "--mavlink-listen", ":14550", "--queue", "kafka://k"), 0);
    ASSERT_STR_EQ(cfg.grpc_listen, ":50051");
    ASSERT_STR_EQ(cfg.mavlink_listen, ":14550");
    ASSERT_STR_EQ(cfg.queue, "kafka://k");
}

TEST(booleans)
{
    static const char *yes[] = { "--fsync=1", "--fsync=true", "--fsync=TRUE", "--fsync=yes", "--fsync=on" };
    static const char *no[] = { "--fsync=0", "--fsync=false", "--fsync=No", "--fsync=off", "--fsync=" };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        char *argv[] = { "dronegate", (char *)yes[i], NULL };
        ASSERT_EQ(load(argv), 0);
        if (!cfg.fsync) CHECK__FAIL("%s gave false", yes[i]);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        char *argv[] = { "dronegate", "--fsync", (char *)no[i], NULL };
        ASSERT_EQ(load(argv), 0);
        if (cfg.fsync) CHECK__FAIL("%s gave true", no[i]);
    }
    ASSERT_EQ(LOAD("--fsync=maybe"), -1);
    ASSERT(strstr(err, "fsync") && strstr(err, "boolean"));
}

TEST(environment_and_precedence)
{
    setenv("DRONEGATE_MAX_MESSAGE", "4096", 1);
    setenv("DRONEGATE_STORE", "null:", 1);
    setenv("DRONEGATE_FSYNC", "true", 1);
    setenv("DRONEGATE_MAX_MSG_RATE", "0", 1);
    ASSERT_EQ(load0(), 0);
    ASSERT_EQ(cfg.max_message, 4096);
    ASSERT_STR_EQ(cfg.store, "null:");
    ASSERT_EQ(cfg.fsync, true);
    ASSERT_EQ(cfg.max_msg_rate, 0);
    /* flags override the environment */
    ASSERT_EQ(LOAD("--max-message", "8192", "--fsync=0"), 0);
    ASSERT_EQ(cfg.max_message, 8192);
    ASSERT_EQ(cfg.fsync, false);
    ASSERT_STR_EQ(cfg.store, "null:");
    /* a bad environment value is an error naming the variable's source */
    setenv("DRONEGATE_MAX_MESSAGE", "big", 1);
    ASSERT_EQ(load0(), -1);
    ASSERT(strstr(err, "environment variable") && strstr(err, "max-message"));
    unsetenv("DRONEGATE_MAX_MESSAGE");
    unsetenv("DRONEGATE_STORE");
    unsetenv("DRONEGATE_FSYNC");
    unsetenv("DRONEGATE_MAX_MSG_RATE");
    ASSERT_EQ(load0(), 0);
    ASSERT_EQ(cfg.max_message, 1048576);
}

TEST(repeatable_list_flag)
{
    /* --mavlink-forward: the environment gives a list, the first flag
     * replaces it, later flags append */
    setenv("DRONEGATE_MAVLINK_FORWARD", "udp:e:1", 1);
    ASSERT_EQ(load0(), 0);
    ASSERT_STR_EQ(cfg.mavlink_forward, "udp:e:1");
    ASSERT_EQ(LOAD("--mavlink-forward", "udp:a:1", "--mavlink-forward=udp:b:2"), 0);
    ASSERT_STR_EQ(cfg.mavlink_forward, "udp:a:1,udp:b:2");
    unsetenv("DRONEGATE_MAVLINK_FORWARD");
    char big[1100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[600] = '\0';
    ASSERT_EQ(LOAD("--mavlink-forward", big, "--mavlink-forward", big), -1);
    ASSERT(strstr(err, "mavlink-forward") && strstr(err, "too long"));
}

TEST(errors)
{
    ASSERT_EQ(LOAD("--no-such-flag"), -1);
    ASSERT(strstr(err, "unknown flag '--no-such-flag'"));
    ASSERT_EQ(LOAD("--listen-x=1"), -1);          /* prefix of a name is not the name */
    ASSERT_EQ(LOAD("--liste", "x"), -1);
    ASSERT_EQ(LOAD("stray"), -1);
    ASSERT(strstr(err, "unexpected argument 'stray'"));
    ASSERT_EQ(LOAD("--store"), -1);
    ASSERT(strstr(err, "--store needs a value"));
    ASSERT_EQ(LOAD("--max-message", "63"), -1);   /* below the minimum */
    ASSERT(strstr(err, "max-message=63") && strstr(err, "[64,"));
    ASSERT_EQ(LOAD("--max-message", "1073741825"), -1);
    ASSERT_EQ(LOAD("--max-message", "1073741824"), 0);
    ASSERT_EQ(LOAD("--max-message", "12k"), -1);
    ASSERT_EQ(LOAD("--max-message", ""), -1);
    ASSERT_EQ(LOAD("--max-message", "99999999999999999999999"), -1);
    ASSERT_EQ(LOAD("--batch-pool", "1"), -1);
    ASSERT_EQ(LOAD("--workers", "-1"), -1);
    ASSERT_EQ(LOAD("--workers", "257"), -1);
    ASSERT_EQ(LOAD("--workers", "256"), 0);
    ASSERT_EQ(cfg.workers, 255);                 /* clamped to what a record can name */
    ASSERT_EQ(LOAD("--ack-interval", "0"), 0);
    ASSERT_EQ(LOAD("--max-msg-rate", "0"), 0);
    ASSERT_EQ(cfg.max_msg_rate, 0);
    /* too long for the field */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_EQ(LOAD("--listen", big), -1);
    ASSERT(strstr(err, "too long") && strstr(err, "at most 255"));
    big[255] = '\0';
    ASSERT_EQ(LOAD("--listen", big), 0);
    ASSERT_EQ(strlen(cfg.listen), 255);
}

TEST(help_and_usage)
{
    fflush(stdout);
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    ASSERT(saved >= 0 && devnull >= 0);
    dup2(devnull, 1);
    int rc = LOAD("--help");
    int rc2 = LOAD("-h");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(devnull);
    ASSERT_EQ(rc, 1);
    ASSERT_EQ(rc2, 1);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f);
    dg_config_usage(f);
    fclose(f);
    ASSERT(strstr(text, "--max-message") && strstr(text, "DRONEGATE_MAX_MESSAGE"));
    ASSERT(strstr(text, "--allowed-origins") && strstr(text, "DRONEGATE_ALLOWED_ORIGINS"));
    ASSERT(strstr(text, "--fsync"));
    free(text);
}

TEST(split_hostport)
{
    char host[64];
    int port = -1;
    ASSERT_EQ(dg_split_hostport("127.0.0.1:8080", host, sizeof host, &port), 0);
    ASSERT_STR_EQ(host, "127.0.0.1"); ASSERT_EQ(port, 8080);
    ASSERT_EQ(dg_split_hostport("[::1]:0", host, sizeof host, &port), 0);
    ASSERT_STR_EQ(host, "::1"); ASSERT_EQ(port, 0);
    ASSERT_EQ(dg_split_hostport(":9", host, sizeof host, &port), 0);
    ASSERT_STR_EQ(host, "0.0.0.0"); ASSERT_EQ(port, 9);
    ASSERT_EQ(dg_split_hostport("h:65535", host, sizeof host, &port), 0);
    ASSERT_EQ(dg_split_hostport("h:65536", host, sizeof host, &port), -1);
    ASSERT_EQ(dg_split_hostport("h:-1", host, sizeof host, &port), -1);
    ASSERT_EQ(dg_split_hostport("h:", host, sizeof host, &port), -1);
    ASSERT_EQ(dg_split_hostport("h:80x", host, sizeof host, &port), -1);
    ASSERT_EQ(dg_split_hostport("nohost", host, sizeof host, &port), -1);
    ASSERT_EQ(dg_split_hostport("[::1]80", host, sizeof host, &port), -1);
    ASSERT_EQ(dg_split_hostport("[::1:80", host, sizeof host, &port), -1);
    char small[4];
    ASSERT_EQ(dg_split_hostport("abcd:1", small, sizeof small, &port), -1);
    ASSERT_EQ(dg_split_hostport("abc:1", small, sizeof small, &port), 0);
}

int main(void)
{
    /* the developer's shell must not configure the test */
    extern char **environ;
    for (char **e = environ; *e; ) {
        if (!strncmp(*e, "DRONEGATE_", 10)) {
            char name[128];
            size_t n = strcspn(*e, "=");
            snprintf(name, sizeof name, "%.*s", (int)n, *e);
            unsetenv(name);
        } else {
            e++;
        }
    }
    RUN(defaults);
    RUN(repeatable_list_flag);
    RUN(flags_both_forms);
    RUN(booleans);
    RUN(environment_and_precedence);
    RUN(errors);
    RUN(help_and_usage);
    RUN(split_hostport);
    return check_summary("config");
}
