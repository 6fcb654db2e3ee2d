/* test_fleet.c - the fleet notification payload parser and --instance. */
#include <string.h>

#include "check.h"
#include "core/config.h"
#include "fleet/fleet.h"

#define ID32 "0123456789abcdef0123456789abcdef"

TEST(notify_well_formed)
{
    char inst[65], id[33];
    ASSERT_EQ(dg_fleet_parse_notify("gw-b " ID32, inst, id), 0);
    ASSERT(!strcmp(inst, "gw-b"));
    ASSERT(!strcmp(id, ID32));
}

TEST(notify_refused)
{
    char inst[65], id[33];
    char longinst[128];
    memset(longinst, 'a', 65);
    strcpy(longinst + 65, " " ID32);
    ASSERT_EQ(dg_fleet_parse_notify(NULL, inst, id), -1);
    ASSERT_EQ(dg_fleet_parse_notify("", inst, id), -1);
    ASSERT_EQ(dg_fleet_parse_notify(ID32, inst, id), -1);                 /* no instance */
    ASSERT_EQ(dg_fleet_parse_notify(" " ID32, inst, id), -1);             /* empty instance */
    ASSERT_EQ(dg_fleet_parse_notify(longinst, inst, id), -1);             /* 65 chars */
    ASSERT_EQ(dg_fleet_parse_notify("gw/b " ID32, inst, id), -1);         /* bad char */
    ASSERT_EQ(dg_fleet_parse_notify("gw " ID32 "0", inst, id), -1);       /* 33 hex */
    ASSERT_EQ(dg_fleet_parse_notify("gw 0123456789ABCDEF0123456789abcdef", inst, id), -1); /* upper */
    ASSERT_EQ(dg_fleet_parse_notify("gw  " ID32, inst, id), -1);          /* two spaces */
}

TEST(moved_payload)
{
    char inst[65], drone[DG_DRONE_ID_MAX + 1];
    ASSERT_EQ(dg_fleet_parse_moved("gw-a drone-7.x_1", inst, drone), 0);
    ASSERT(!strcmp(inst, "gw-a"));
    ASSERT(!strcmp(drone, "drone-7.x_1"));
    char long_id[80] = "gw ";
    memset(long_id + 3, 'd', 65);
    long_id[68] = '\0';
    ASSERT_EQ(dg_fleet_parse_moved(long_id, inst, drone), -1);          /* 65-char drone id */
    long_id[67] = '\0';
    ASSERT_EQ(dg_fleet_parse_moved(long_id, inst, drone), 0);           /* 64 is fine */
    ASSERT_EQ(strlen(drone), 64u);
    ASSERT_EQ(dg_fleet_parse_moved(NULL, inst, drone), -1);
    ASSERT_EQ(dg_fleet_parse_moved("gw-a", inst, drone), -1);           /* no drone */
    ASSERT_EQ(dg_fleet_parse_moved("gw-a ", inst, drone), -1);          /* empty drone */
    ASSERT_EQ(dg_fleet_parse_moved(" d1", inst, drone), -1);            /* empty instance */
    ASSERT_EQ(dg_fleet_parse_moved("gw-a d/1", inst, drone), -1);       /* bad drone char */
    ASSERT_EQ(dg_fleet_parse_moved("gw-a d 1", inst, drone), -1);       /* space in the id */
    ASSERT_EQ(dg_fleet_parse_moved("g:w d1", inst, drone), -1);         /* bad instance char */
}

TEST(presence_payload)
{
    char inst[65], drone[DG_DRONE_ID_MAX + 1];
    ASSERT_EQ(dg_fleet_parse_presence("gw-b 1 d-1", inst, drone), 1);
    ASSERT(!strcmp(inst, "gw-b") && !strcmp(drone, "d-1"));
    ASSERT_EQ(dg_fleet_parse_presence("gw-b 0 d-1", inst, drone), 0);
    ASSERT_EQ(dg_fleet_parse_presence("gw-b reset", inst, drone), 2);
    ASSERT(!strcmp(inst, "gw-b") && drone[0] == '\0');
    ASSERT_EQ(dg_fleet_parse_presence(NULL, inst, drone), -1);
    ASSERT_EQ(dg_fleet_parse_presence("gw-b 2 d-1", inst, drone), -1);
    ASSERT_EQ(dg_fleet_parse_presence("gw-b 1d-1", inst, drone), -1);
    ASSERT_EQ(dg_fleet_parse_presence("gw-b 1 ", inst, drone), -1);
    ASSERT_EQ(dg_fleet_parse_presence("gw-b 1 d/1", inst, drone), -1);
    ASSERT_EQ(dg_fleet_parse_presence("gw-b resets", inst, drone), -1);
    ASSERT_EQ(dg_fleet_parse_presence(" 1 d", inst, drone), -1);
}

TEST(instance_flag)
{
    dg_config_t c;
    char err[256];
    char *ok[] = { "x", "--instance", "gw-1.eu_2" };
    ASSERT_EQ(dg_config_load(&c, 3, ok, 1, err, sizeof err), 0);
    ASSERT(!strcmp(c.instance, "gw-1.eu_2"));
    char *bad[] = { "x", "--instance", "gw 1" };
    ASSERT_EQ(dg_config_load(&c, 3, bad, 1, err, sizeof err), -1);
    ASSERT(strstr(err, "--instance") != NULL);
    char *none[] = { "x" };
    ASSERT_EQ(dg_config_load(&c, 1, none, 1, err, sizeof err), 0);
    ASSERT(c.instance[0] != '\0');                                      /* the hostname */
    for (const char *p = c.instance; *p; p++) ASSERT(strchr("/ :", *p) == NULL);
}

int main(void)
{
    RUN(notify_well_formed);
    RUN(notify_refused);
    RUN(moved_payload);
    RUN(presence_payload);
    RUN(instance_flag);
    return check_summary("fleet");
}
