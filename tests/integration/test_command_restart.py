"""Commands across a gateway restart: a command's expiry is counted from its
CREATION, not from the restart (README: "After a restart, commands that were
not finished and have not timed out are taken back from the store (pending
ones are delivered, later command_acks apply)").

No sleeping on a race: where the test waits, it waits until a deadline
computed from the command's created_at has surely passed (a lower bound).
"""
import asyncio
import json
import secrets
import sqlite3
import time

import pytest

from dg import T, Drone, minimal, new_id, run, to_ms, wait_until

TOOK_BACK = "took back"     # main.c: "took back N open command(s) of an earlier run"


def post(s, drone, body):
    return s.get(f"/api/v1/drones/{drone}/commands", method="POST", body=json.dumps(body),
                 headers={"Content-Type": "application/json"})


def commands_of(d):
    return [m for m in d.other if m.get("type") == "command"]


def sent_command(s, drone):
    """A drone connects, a command is POSTed, the drone receives it and does
    not answer (status sent). Returns (cid, created_at in ms)."""
    async def go():
        d = await Drone.connect(s, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        r = post(s, drone, {"name": "return_to_home"})
        assert r.status == 202, r
        cid = r.json()["id"]
        await d.wait(lambda: commands_of(d), T(5), "command frame")
        assert commands_of(d)[0]["id"] == cid
        wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] == "sent", T(5), "sent")
        await d.close()
        return cid
    cid = run(go())
    created_ms = to_ms(s.get_json(f"/api/v1/commands/{cid}")["created_at"])
    return cid, created_ms


def wait_store_status(s, cid, status):
    def row():
        con = sqlite3.connect(str(s.db))
        try:
            r = con.execute("SELECT status FROM commands WHERE id=?", (cid,)).fetchone()
            return r[0] if r else None
        finally:
            con.close()
    wait_until(lambda: row() == status, T(5), f"commands row {cid} {status}")


def reconnect_and_ack(s, drone, cid):
    """After the restart: the drone reconnects, must not get the (sent)
    command again, and answers it `done`. Returns the commands it received."""
    async def go():
        d = await Drone.connect(s, drone)
        await d.send({"type": "command_ack", "id": cid, "status": "done", "message": "late"})
        await d.send(minimal(2))
        await d.wait_ack(2)
        await d.sync()      # everything the server sent before now is read
        got = commands_of(d)
        await d.close()
        return got
    return run(go())


def test_overdue_command_is_not_taken_back(server_factory):
    timeout_ms = 4000
    s = server_factory(args=["--command-timeout", str(timeout_ms)])
    drone = new_id("rst")
    cid, created_ms = sent_command(s, drone)
    s.stop()
    # the deadline is counted from creation: wait until it has surely passed
    # (plus a margin for the clock's rounding), not for a fixed time
    while time.time() * 1000 < created_ms + timeout_ms + 200:
        time.sleep(0.05)
    s.start()
    got = reconnect_and_ack(s, drone, cid)
    assert got == [], got
    # the late ack does not revive an expired command: it must not turn done
    st = s.get_json(f"/api/v1/commands/{cid}")
    assert st["status"] != "done", st
    # a restart-time clock would take the command back as still open
    assert TOOK_BACK not in s.stderr(), s.tail()


def test_overdue_command_reads_expired_after_restart(server_factory):
    """README: an unanswered command is `expired` after --command-timeout."""
    timeout_ms = 3000
    s = server_factory(args=["--command-timeout", str(timeout_ms)])
    drone = new_id("rsx")
    cid, created_ms = sent_command(s, drone)
    s.stop()
    while time.time() * 1000 < created_ms + timeout_ms + 200:
        time.sleep(0.05)
    s.start()
    st = s.get_json(f"/api/v1/commands/{cid}")
    assert st["status"] == "expired", st


def test_open_command_is_taken_back(server_factory):
    """The converse: with a long timeout the restart takes the sent command
    back, and the drone's later command_ack applies."""
    s = server_factory(args=["--command-timeout", "60000"])
    drone = new_id("rsk")
    cid, _ = sent_command(s, drone)
    s.stop()
    s.start()
    got = reconnect_and_ack(s, drone, cid)
    assert got == [], got   # a sent command is not sent again (README: pending ones are)
    wait_until(lambda: s.get_json(f"/api/v1/commands/{cid}")["status"] == "done", T(5), "done after restart")
    wait_store_status(s, cid, "done")
    assert "took back 1 open command" in s.stderr(), s.tail()


def insert_pending(s, drone, created_ms):
    cid = secrets.token_hex(16)
    con = sqlite3.connect(str(s.db))
    try:
        with con:
            con.execute("INSERT INTO commands (id, drone_id, name, args, status, message, created_at, updated_at) "
                        "VALUES (?, ?, 'land', '{}', 'pending', '', ?, ?)", (cid, drone, created_ms, created_ms))
    finally:
        con.close()
    return cid


def test_pending_commands_delivered_by_creation_time(server_factory):
    """Pending commands of an earlier run (e.g. the gateway stopped before it
    could send them): the one created within the timeout is delivered when the
    drone reconnects; the one created longer ago than the timeout is not,
    although the restart itself is recent. The created_at values are written
    into the store directly, so no clock is waited on."""
    timeout_ms = 60000
    s = server_factory(args=["--command-timeout", str(timeout_ms)])
    drone = new_id("rsp")

    async def first():
        d = await Drone.connect(s, drone)
        await d.send(minimal(1))
        await d.wait_ack(1)
        await d.close()
    run(first())
    s.stop()
    now = int(time.time() * 1000)
    fresh = insert_pending(s, drone, now - timeout_ms // 2)
    old = insert_pending(s, drone, now - 2 * timeout_ms)
    s.start()

    async def second():
        d = await Drone.connect(s, drone)
        await d.wait(lambda: commands_of(d), T(5), "the pending command")
        await d.sync()
        got = [m["id"] for m in commands_of(d)]
        await d.send({"type": "command_ack", "id": fresh, "status": "done"})
        await d.send(minimal(2))
        await d.wait_ack(2)
        await d.close()
        return got
    got = run(second())
    assert got == [fresh], (got, fresh, old)
    wait_until(lambda: s.get_json(f"/api/v1/commands/{fresh}")["status"] == "done", T(5), "fresh done")
    assert s.get_json(f"/api/v1/commands/{old}")["status"] != "done"
    assert "took back 1 open command" in s.stderr(), s.tail()


def test_taken_back_command_expires_at_creation_plus_timeout(server_factory):
    """A command taken back at start keeps its creation time: it expires at
    created_at + timeout, not at restart + timeout. The gateway stays down
    for GAP seconds (a lower bound), so the two deadlines are GAP apart; the
    command must read `expired` before the later one (the sweep runs at
    least once a second, so the earlier one is met with GAP - 1 s to spare)."""
    timeout_ms, gap = 6000, 2.5
    s = server_factory(args=["--command-timeout", str(timeout_ms)])
    drone = new_id("rse")
    cid, created_ms = sent_command(s, drone)
    s.stop()
    time.sleep(gap)             # the gap between the two deadlines is the test
    s.start()
    # a restart in time: the command was still open and is taken back
    restart_ms = time.time() * 1000
    assert restart_ms < created_ms + timeout_ms - 300, "the restart took too long to tell the deadlines apart"
    late = created_ms + timeout_ms + gap * 1000 - 200   # before restart + timeout
    status = None
    while time.time() * 1000 < late:
        status = s.get_json(f"/api/v1/commands/{cid}")["status"]
        if status == "expired":
            break
        time.sleep(0.05)
    assert status == "expired", (status, "not expired by created_at + timeout + %.1f s" % (gap - 0.2))
    c = s.get_json(f"/api/v1/commands/{cid}")
    assert to_ms(c["updated_at"]) >= created_ms + timeout_ms, c
    assert "took back 1 open command" in s.stderr(), s.tail()
