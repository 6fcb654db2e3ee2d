/* mission.c - plausible multicopter flights for the simulated drones.
 *
 * Every drone has a home point spread uniformly over a 10 km disc around
 * 47.39 N 8.54 E (Zurich), a flat ground at 400-550 m AMSL, a cruise height of
 * 60-120 m and a cruise speed of 10-15 m/s. A mission is:
 *
 *   landed (wait) -> takeoff (climb 3 m/s) -> airborne (3-5 waypoints 0.5-4 km
 *   from home, heading turning towards the track at <= 45 deg/s, slowing down
 *   near waypoints) -> returning (fly home) -> landing (2 m/s, 0.7 m/s in the
 *   last 10 m) -> landed (5-20 s, battery swapped below 50 %) -> next mission.
 *
 * Battery: 0.07 %/s airborne (about 20 min of flight), plus 0.04 %/s per m/s
 * of climb and a little for speed; when what is left only just covers the
 * way home and the landing (+10 %) the drone returns, at 0 % it lands where
 * it is. Commands (return_to_home, land, goto) take over the
 * flight; cmd_event is raised when the manoeuvre is finished.
 *
 * Positions use a local flat-earth step (fine for a few km per step).
 * Integration is in sub-steps of at most 100 ms, so the flight is the same
 * at 0.1 Hz and at 1000 Hz. State is owned by the drone's worker thread.
 */
#include "sim.h"

#include <math.h>

#define EARTH_R   6371008.8
#define DEG       (M_PI / 180.0)
#define HOME_LAT  47.39
#define HOME_LON  8.54

enum { PH_GROUND, PH_TAKEOFF, PH_CRUISE, PH_RETURN, PH_LANDING, PH_GOTO, PH_HOLD };

static double rnd(uint64_t *s) { return (double)(sim_rand(s) >> 11) * (1.0 / 9007199254740992.0); }

static void offset(double lat, double lon, double north_m, double east_m,
                   double *olat, double *olon)
{
    *olat = lat + north_m / EARTH_R / DEG;
    *olon = lon + east_m / (EARTH_R * cos(lat * DEG)) / DEG;
}

static void plan(sim_mission_t *m)
{
    m->wp_n = (uint8_t)(3 + sim_rand(&m->rng) % 3);
    for (int i = 0; i < m->wp_n; i++) {
        double r = 500 + 3500 * rnd(&m->rng), th = 2 * M_PI * rnd(&m->rng);
        offset(m->home_lat, m->home_lon, r * cos(th), r * sin(th), &m->wp_lat[i], &m->wp_lon[i]);
    }
    m->wp_i = 0;
}

void sim_mission_init(sim_mission_t *m, uint32_t idx, uint64_t seed)
{
    *m = (sim_mission_t){ 0 };
    m->rng = seed ^ (0x9e3779b97f4a7c15ull * (idx + 1));
    (void)sim_rand(&m->rng);
    double r = 10000 * sqrt(rnd(&m->rng)), th = 2 * M_PI * rnd(&m->rng);
    offset(HOME_LAT, HOME_LON, r * cos(th), r * sin(th), &m->home_lat, &m->home_lon);
    m->ground = 400 + 150 * rnd(&m->rng);
    m->lat = m->home_lat;
    m->lon = m->home_lon;
    m->alt = m->ground;
    m->heading = 360 * rnd(&m->rng);
    m->battery = 60 + 40 * rnd(&m->rng);
    m->cruise_agl = 60 + 60 * rnd(&m->rng);
    m->cruise_speed = 10 + 5 * rnd(&m->rng);
    m->wait_s = 0.5 + 4.5 * rnd(&m->rng);   /* first take-off within 5 s */
    m->phase = PH_GROUND;
    m->after_takeoff = PH_CRUISE;
    m->cmd_msg = "";
}

int sim_mission_status(const sim_mission_t *m)
{
    switch (m->phase) {
    case PH_GROUND:  return SIM_ST_LANDED;
    case PH_TAKEOFF: return SIM_ST_TAKEOFF;
    case PH_RETURN:  return SIM_ST_RETURNING;
    case PH_LANDING: return SIM_ST_LANDING;
    default:         return SIM_ST_AIRBORNE;
    }
}

static double wrap180(double a)
{
    a = fmod(a, 360.0);
    if (a > 180) a -= 360;
    if (a <= -180) a += 360;
    return a;
}

static double clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static void finish_cmd(sim_mission_t *m, const char *msg)
{
    if (m->cmd == SIM_CMD_NONE) return;
    m->cmd = SIM_CMD_NONE;
    m->cmd_event = 1;
    m->cmd_msg = msg;
}

/* Fly towards (lat, lon, alt) for h seconds; radius = arrival distance (m).
 * Returns 1 on arrival. */
static int fly_to(sim_mission_t *m, double tlat, double tlon, double talt,
                  double radius, double h)
{
    double dn = (tlat - m->lat) * DEG * EARTH_R;
    double de = (tlon - m->lon) * DEG * EARTH_R * cos(m->lat * DEG);
    double dist = hypot(dn, de);
    double dz = talt - m->alt;

    m->climb = clamp(dz, -2.0, 3.0);
    m->alt += m->climb * h;

    if (dist < radius && fabs(dz) < 0.5) {
        m->speed = dist < 2 ? 0 : m->speed;
        return 1;
    }
    double vt = 0;
    if (dist >= 0.5) {
        double brg = atan2(de, dn) / DEG;
        double err = wrap180(brg - m->heading);
        double turn = clamp(err, -45 * h, 45 * h);
        m->heading = fmod(m->heading + turn + 360.0, 360.0);
        /* Slow down near the target and while turning hard. */
        vt = fmin(m->cruise_speed, 0.5 * dist + 0.5);
        double c = cos(wrap180(brg - m->heading) * DEG);
        vt *= c > 0.1 ? c : 0.1;
    }
    /* 3 m/s^2 acceleration limit. */
    m->speed += clamp(vt - m->speed, -3 * h, 3 * h);
    if (m->speed < 0) m->speed = 0;
    double step = m->speed * h;
    if (step >= dist) {
        m->lat = tlat;
        m->lon = tlon;
    } else {
        offset(m->lat, m->lon, step * cos(m->heading * DEG), step * sin(m->heading * DEG),
               &m->lat, &m->lon);
    }
    return 0;
}

static void start_landing(sim_mission_t *m)
{
    m->phase = PH_LANDING;
}

/* Battery needed to fly home and land, plus 10 % (and 30 s of margin). */
static double reserve(const sim_mission_t *m)
{
    double dn = (m->home_lat - m->lat) * DEG * EARTH_R;
    double de = (m->home_lon - m->lon) * DEG * EARTH_R * cos(m->lat * DEG);
    double secs = hypot(dn, de) / m->cruise_speed + (m->alt - m->ground) / 1.5 + 30;
    return 10 + secs * (0.07 + 0.002 * m->cruise_speed);
}

/* --airborne: put the drone in the air, level at its cruise altitude and at
 * cruise speed, at a random point of a freshly planned mission (10-90 % of
 * the way along a random leg, heading for that leg's waypoint), with at least
 * enough battery to fly on for a while before it returns. Draws from the
 * drone's own random stream after sim_mission_init(), so a run without the
 * flag is unchanged. */
void sim_mission_airborne(sim_mission_t *m)
{
    plan(m);
    m->wp_i = (uint8_t)(sim_rand(&m->rng) % m->wp_n);
    double from_lat = m->wp_i ? m->wp_lat[m->wp_i - 1] : m->home_lat;
    double from_lon = m->wp_i ? m->wp_lon[m->wp_i - 1] : m->home_lon;
    double to_lat = m->wp_lat[m->wp_i], to_lon = m->wp_lon[m->wp_i];
    double f = 0.1 + 0.8 * rnd(&m->rng);
    m->lat = from_lat + f * (to_lat - from_lat);     /* legs are a few km: linear is fine */
    m->lon = from_lon + f * (to_lon - from_lon);
    double dn = (to_lat - m->lat) * DEG * EARTH_R;
    double de = (to_lon - m->lon) * DEG * EARTH_R * cos(m->lat * DEG);
    m->heading = fmod(atan2(de, dn) / DEG + 360.0, 360.0);
    m->alt = m->ground + m->cruise_agl;
    m->speed = m->cruise_speed;
    m->climb = 0;
    m->wait_s = 0;
    m->phase = PH_CRUISE;
    m->after_takeoff = PH_CRUISE;
    double need = reserve(m) + 15;          /* ~2.5 min of flight before the return */
    if (m->battery < need) m->battery = fmin(100.0, need + 10 * rnd(&m->rng));
}

static void substep(sim_mission_t *m, double h)
{
    double cruise_alt = m->ground + m->cruise_agl;
    switch (m->phase) {
    case PH_GROUND:
        m->speed = 0;
        m->climb = 0;
        m->alt = m->ground;
        m->wait_s -= h;
        if (m->wait_s <= 0) {
            if (m->battery < 50) m->battery = 95 + 5 * rnd(&m->rng);  /* swapped */
            plan(m);
            m->phase = PH_TAKEOFF;
            m->after_takeoff = PH_CRUISE;
        }
        break;
    case PH_TAKEOFF: {
        double top = m->after_takeoff == PH_GOTO ? fmax(m->tgt_alt, m->ground + 10) : cruise_alt;
        if (m->after_takeoff == PH_GOTO && top > cruise_alt) top = cruise_alt;
        m->speed = 0;
        m->climb = 3;
        m->alt += 3 * h;
        if (m->alt >= top) {
            m->alt = top;
            m->climb = 0;
            m->phase = m->after_takeoff;
        }
        break;
    }
    case PH_CRUISE:
        if (fly_to(m, m->wp_lat[m->wp_i], m->wp_lon[m->wp_i], cruise_alt, 15, h)) {
            if (++m->wp_i >= m->wp_n) m->phase = PH_RETURN;
        }
        break;
    case PH_RETURN:
        if (fly_to(m, m->home_lat, m->home_lon, fmax(m->alt, m->ground + 20), 2, h))
            start_landing(m);
        break;
    case PH_GOTO:
        if (fly_to(m, m->tgt_lat, m->tgt_lon, m->tgt_alt, 2, h)) {
            m->phase = PH_HOLD;
            finish_cmd(m, "");
        }
        break;
    case PH_HOLD:
        m->speed = fmax(0, m->speed - 3 * h);
        m->climb = 0;
        break;
    case PH_LANDING: {
        double agl = m->alt - m->ground;
        m->speed = fmax(0, m->speed - 3 * h);
        m->climb = agl > 10 ? -2.0 : -0.7;
        m->alt += m->climb * h;
        if (m->alt <= m->ground) {
            m->alt = m->ground;
            m->climb = 0;
            m->speed = 0;
            m->phase = PH_GROUND;
            m->wait_s = 5 + 15 * rnd(&m->rng);
            finish_cmd(m, "");
        }
        break;
    }
    }

    if (m->phase != PH_GROUND) {
        m->battery -= h * (0.07 + 0.04 * fmax(m->climb, 0) + 0.002 * m->speed);
        if (m->battery <= 0) {
            m->battery = 0;
            if (m->phase != PH_LANDING) {
                finish_cmd(m, "aborted: battery empty, landing");
                start_landing(m);
            }
        } else if ((m->phase == PH_CRUISE || m->phase == PH_GOTO || m->phase == PH_HOLD) &&
                   m->battery < reserve(m)) {
            finish_cmd(m, "aborted: battery low, returning home");
            m->phase = PH_RETURN;
        }
    }
}

void sim_mission_step(sim_mission_t *m, int64_t now_us)
{
    if (m->t_us == 0) {
        m->t_us = now_us;
        return;
    }
    if (now_us <= m->t_us) return;
    double dt = (double)(now_us - m->t_us) / 1e6;
    m->t_us = now_us;
    if (dt > 3600) dt = 3600;
    while (dt > 0) {
        double h = dt > 0.1 ? 0.1 : dt;
        substep(m, h);
        dt -= h;
    }
}

int sim_mission_command(sim_mission_t *m, int cmd, double lat, double lon,
                        double alt, bool has_alt, const char **why)
{
    *why = "";
    double dn, de;
    switch (cmd) {
    case SIM_CMD_RTH:
        m->cmd = SIM_CMD_RTH;
        dn = (m->home_lat - m->lat) * DEG * EARTH_R;
        de = (m->home_lon - m->lon) * DEG * EARTH_R * cos(m->lat * DEG);
        if (m->phase == PH_GROUND && hypot(dn, de) < 5) {
            m->wait_s = fmax(m->wait_s, 10);
            finish_cmd(m, "already home");
        } else if (m->phase == PH_TAKEOFF && hypot(dn, de) < 5) {
            start_landing(m);                  /* still over home: just come down */
        } else if (m->phase == PH_GROUND || m->phase == PH_TAKEOFF) {
            m->phase = PH_TAKEOFF;
            m->after_takeoff = PH_RETURN;
        } else if (m->phase != PH_LANDING || hypot(dn, de) >= 5) {
            m->phase = PH_RETURN;
        }
        return 0;
    case SIM_CMD_LAND:
        m->cmd = SIM_CMD_LAND;
        if (m->phase == PH_GROUND) {
            m->wait_s = fmax(m->wait_s, 10);
            finish_cmd(m, "already landed");
        } else {
            start_landing(m);
        }
        return 0;
    case SIM_CMD_GOTO:
        if (!isfinite(lat) || lat < -90 || lat > 90 || !isfinite(lon) || lon < -180 || lon > 180) {
            *why = "goto needs args lat in [-90, 90] and lon in [-180, 180]";
            return -1;
        }
        dn = (lat - m->lat) * DEG * EARTH_R;
        de = wrap180(lon - m->lon) * DEG * EARTH_R * cos(m->lat * DEG);
        if (hypot(dn, de) > 50000) {
            *why = "goto target is more than 50 km away";
            return -1;
        }
        if (has_alt && (!isfinite(alt) || alt < m->ground + 5 || alt > m->ground + 500)) {
            *why = "goto alt must be 5 to 500 m above the ground (metres AMSL)";
            return -1;
        }
        m->cmd = SIM_CMD_GOTO;
        m->tgt_lat = lat;
        m->tgt_lon = lon;
        m->tgt_alt = has_alt ? alt : (m->phase == PH_GROUND ? m->ground + m->cruise_agl
                                                            : fmax(m->alt, m->ground + 10));
        if (m->phase == PH_GROUND || m->phase == PH_TAKEOFF) {
            m->phase = PH_TAKEOFF;
            m->after_takeoff = PH_GOTO;
        } else {
            m->phase = PH_GOTO;
        }
        return 0;
    default:
        *why = "unknown command";
        return -1;
    }
}
