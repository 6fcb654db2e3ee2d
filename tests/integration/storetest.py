"""storetest.py - helpers shared by the store tests (test_store_postgres.py,
test_store_influxdb.py): a fresh database of the shared PostgreSQL or
InfluxDB server per test, what the REST history must show for a sent
message, and sending a list of messages as one drone until acked.
"""
import re
import uuid

from dg import Drone


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (year 0 included,
    which Python's datetime refuses)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def to_ms(s):
    """RFC 3339 -> ms since the epoch, truncating the fraction to ms (as the gateway does)."""
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$", s)
    assert m, f"not an RFC 3339 timestamp: {s!r}"
    y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
    ms = int(((m.group(7) or "") + "000")[:3])
    t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec
    if m.group(8) != "Z":
        off = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        t -= off if m.group(9) == "+" else -off
    return t * 1000 + ms


def expected_row(m):
    """What the REST history must show for a sent message (without received_at)."""
    row = {k: m[k] for k in ("seq", "latitude", "longitude", "altitude", "speed", "heading",
                             "climb", "battery", "status") if k in m}
    ts = m.get("timestamp")
    if ts is not None:
        row["timestamp"] = ts if isinstance(ts, int) else to_ms(ts)
    return row


def rest_rows(s, drone, **params):
    out = []
    for r in s.history(drone, **params):
        r = dict(r)
        r.pop("received_at")
        r["timestamp"] = to_ms(r["timestamp"])
        out.append(r)
    return out


async def send_all(s, drone, msgs, wait_seq, batch=False):
    d = await Drone.connect(s, drone)
    if batch:
        await d.send(msgs)
    else:
        for m in msgs:
            await d.send(m)
    await d.wait_ack(wait_seq)
    assert not d.errors, d.errors
    await d.close()
    return d


class DB:
    """One fresh database of the shared cluster."""

    def __init__(self, pg):
        self.pg = pg
        self.name = "t_" + uuid.uuid4().hex[:12]
        pg.uri(self.name)           # CREATE DATABASE

    def uri(self, scheme="postgresql", **params):
        u = self.pg.uri(self.name, **params)
        return scheme + u[len("postgresql"):]

    def rows(self, sql, *args):
        with self.pg.connect(self.name) as con:
            return con.execute(sql, args).fetchall()

    def one(self, sql, *args):
        r = self.rows(sql, *args)
        assert len(r) == 1, f"{sql}: {r}"
        return r[0][0] if len(r[0]) == 1 else r[0]

    def exec(self, sql, *args):
        with self.pg.connect(self.name) as con:
            con.execute(sql, args)


class IDB:
    """One fresh database of the shared influxd (created by the gateway at start)."""

    def __init__(self, ix):
        self.ix = ix
        self.name = "t_" + uuid.uuid4().hex[:12]

    def uri(self, user=None, password=None, **params):
        q = ("?" + "&".join(f"{k}={v}" for k, v in params.items())) if params else ""
        return self.ix.uri(self.name, user=user, password=password) + q

    def rows(self, q):
        return self.ix.rows(q, self.name)
