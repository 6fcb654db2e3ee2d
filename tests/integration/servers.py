"""servers.py - throw-away PostgreSQL 15 and InfluxDB 1.x servers for the
integration tests and the store benchmarks.

    with servers.Postgres() as pg:          # initdb + pg_ctl start, free port
        uri = pg.uri("dronegate_t1")        # CREATE DATABASE, libpq URI
        pg.stop(); ...; pg.start()          # same port, same data directory
    with servers.Influx() as ix:            # influxd -config generated.toml
        uri = ix.uri("t1")                  # influxdb://127.0.0.1:PORT/t1
    with servers.Influx(auth=True) as ix:   # [http] auth-enabled = true; an admin
        ix.create_user("bob", "pw")         # user ix.admin is created at start
        uri = ix.uri("t1", user="bob", password="pw")

Both live in a fresh directory from tempfile.mkdtemp() (not pytest's tmp_path:
that one is mode 0700 under /tmp/pytest-of-root, which the `postgres` user
cannot traverse) that is removed at close(). Both listen on 127.0.0.1 only,
on a port found free just before the start (retried if lost to a race).

PostgreSQL refuses to run as root, so as root every server command runs as
the `postgres` system user (runuser -u postgres --) and the directory is
chowned to it; as another user, commands run directly. Authentication is
`trust` (loopback, throw-away cluster). InfluxDB runs without
authentication unless Influx(auth=True). `durable=False` (the default for tests)
turns fsync off; the benchmarks pass durable=True so COPY and dronegate are
measured with the stock commit path.

No fixed sleeps: starts wait on `pg_ctl -w` / the /ping endpoint with a
deadline.
"""
import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
INFLUXD = os.environ.get("INFLUXD", shutil.which("influxd") or "/usr/bin/influxd")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pg_available():
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


def influx_available():
    return os.path.exists(INFLUXD)


class Postgres:
    def __init__(self, durable=False, settings=None):
        self.durable = durable
        self.settings = dict(settings or {})
        self.root = Path(tempfile.mkdtemp(prefix="dg-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "server.log"
        self.port = None
        self.as_root = os.geteuid() == 0
        self._dbs = set()
        self._init()

    # -- plumbing

    def _wrap(self, cmd):
        if self.as_root:
            return ["runuser", "-u", "postgres", "--"] + [str(c) for c in cmd]
        return [str(c) for c in cmd]

    def _run(self, cmd, timeout=60, check=True):
        p = subprocess.run(self._wrap(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, cwd=self.root)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n"
                               f"{p.stdout.decode(errors='replace')}\n--- server log ---\n{self.log_tail()}")
        return p

    def log_tail(self, n=40):
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except (FileNotFoundError, PermissionError):
            return "(no server log)"
        return "\n".join(lines[-n:])

    def _init(self):
        self.sock.mkdir()
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            for p in (self.root, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._run([PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--locale=C", "--no-sync"], timeout=120)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.sock}'",
            "max_connections": "100",
            "shared_buffers": "'256MB'",
            "max_wal_size": "'4GB'",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        if not self.durable:
            conf.update({"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"})
        conf.update(self.settings)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# dronegate test cluster\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")

    # -- life cycle

    def start(self, timeout=60):
        """Start the server. The first start picks a free port (another one if
        it is lost to a race); a restart keeps the port so URIs stay valid."""
        first = self.port is None
        for attempt in range(5):
            if first and attempt > 0 or self.port is None:
                self.port = free_port()
            p = self._run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w",
                           "-t", str(int(timeout)), "-o", f"-p {self.port}", "start"],
                          timeout=timeout + 10, check=False)
            if p.returncode == 0:
                return self
            if attempt < 4 and not _port_free(self.port):
                if not first:
                    time.sleep(0.5)      # our port is briefly taken: wait and retry it
                continue
            raise RuntimeError(f"PostgreSQL did not start:\n{p.stdout.decode(errors='replace')}\n"
                               f"--- server log ---\n{self.log_tail()}")
        return self

    def stop(self, mode="fast"):
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"], check=False)

    def running(self):
        p = self._run([PG_BIN / "pg_ctl", "-D", self.data, "status"], check=False)
        return p.returncode == 0

    def close(self):
        try:
            if self.data.exists() and self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- SQL

    def dsn(self, db="postgres"):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def uri(self, db="postgres", create=True, **params):
        """postgresql://postgres@127.0.0.1:PORT/DB?params (creating DB)."""
        if create and db != "postgres" and db not in self._dbs:
            self.psql(f'CREATE DATABASE "{db}"')
            self._dbs.add(db)
        q = ("?" + urllib.parse.urlencode(params)) if params else ""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}{q}"

    def psql(self, sql, db="postgres", timeout=120, stdin=None):
        """Run SQL with psql (tuples only, unaligned, '|' separated); returns stdout."""
        cmd = [PG_BIN / "psql" if (PG_BIN / "psql").exists() else "psql",
               "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
               "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql]
        p = subprocess.run([str(c) for c in cmd], input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"psql {sql[:200]!r} failed: {p.stderr.decode(errors='replace')}")
        return p.stdout.decode()

    def connect(self, db="postgres"):
        import psycopg
        return psycopg.connect(self.dsn(db), autocommit=True)


class Influx:
    """influxd 1.x with a generated config; HTTP API on 127.0.0.1:port.

    auth=True: `[http] auth-enabled = true`; start() creates the admin user
    (self.admin, self.admin_password) with the unauthenticated
    `CREATE USER ... WITH ALL PRIVILEGES` that InfluxDB 1.x allows while no
    user exists, and query()/write() authenticate as that admin."""

    def __init__(self, auth=False):
        self.auth = auth
        self.admin, self.admin_password = "dgadmin", "adm-" + os.urandom(8).hex()
        self._admin_made = False
        self.root = Path(tempfile.mkdtemp(prefix="dg-influx-"))
        self.conf = self.root / "influxd.conf"
        self.log = self.root / "influxd.log"
        self.proc = None
        self.port = None
        self.rpc_port = None

    def _write_conf(self):
        r = self.root
        self.conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{r}/meta"
  logging-enabled = false

[data]
  dir = "{r}/data"
  wal-dir = "{r}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[coordinator]
  log-queries-after = "0s"

[retention]
  enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
  max-body-size = 0

[continuous_queries]
  enabled = false
""")

    def start(self, timeout=30):
        first = self.port is None
        for attempt in range(5):
            if self.port is None or (first and attempt > 0):
                self.port, self.rpc_port = free_port(), free_port()
            self._write_conf()
            with open(self.log, "ab") as logf:
                self.proc = subprocess.Popen([INFLUXD, "-config", str(self.conf)],
                                             stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                             start_new_session=True)
            if self._wait_ping(timeout):
                if self.auth and not self._admin_made:
                    self.query(f"CREATE USER {self.admin} WITH PASSWORD '{self.admin_password}' "
                               "WITH ALL PRIVILEGES", creds=False)
                    self._admin_made = True
                return self
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait()
            if attempt < 4 and "address already in use" in self.log_tail():
                continue
            raise RuntimeError(f"influxd did not answer /ping within {timeout}s (exit {rc}):\n{self.log_tail()}")
        return self

    def _wait_ping(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/ping")
                if c.getresponse().status == 204:
                    return True
            except OSError:
                pass
            finally:
                c.close()
            time.sleep(0.05)
        return False

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def uri(self, db, user=None, password=None):
        cred = ""
        if user is not None:
            cred = urllib.parse.quote(user, safe="") + ":" + urllib.parse.quote(password or "", safe="") + "@"
        return f"influxdb://{cred}127.0.0.1:{self.port}/{db}"

    def create_user(self, user, password, admin=False):
        self.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}'" + (" WITH ALL PRIVILEGES" if admin else ""))

    def _auth_params(self, params, creds):
        if self.auth and creds:
            params.update(u=self.admin, p=self.admin_password)
        return params

    def query(self, q, db=None, epoch="ms", creds=True):
        """InfluxQL over POST /query; returns the decoded JSON."""
        import json
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        self._auth_params(params, creds)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("POST", "/query?" + urllib.parse.urlencode(params))
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"influx query {q!r}: HTTP {r.status} {body[:300]!r}")
            return json.loads(body)
        finally:
            c.close()

    def write(self, db, lines, precision="ms"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            body = lines if isinstance(lines, bytes) else lines.encode()
            params = self._auth_params({"db": db, "precision": precision}, True)
            c.request("POST", "/write?" + urllib.parse.urlencode(params), body=body)
            r = c.getresponse()
            data = r.read()
            if r.status != 204:
                raise RuntimeError(f"influx write: HTTP {r.status} {data[:300]!r}")
        finally:
            c.close()

    def rows(self, q, db):
        """Every row of every series of a query, as dicts (with the series' tags)."""
        doc = self.query(q, db)
        out = []
        for res in doc.get("results", []):
            if "error" in res:
                raise RuntimeError(f"influx query {q!r}: {res['error']}")
            for s in res.get("series", []) or []:
                cols = s["columns"]
                for v in s["values"]:
                    row = dict(zip(cols, v))
                    row.update(s.get("tags") or {})
                    out.append(row)
        return out


# ---------------------------------------------------------------- shared

_shared = {}


def _close_shared():
    for s in _shared.values():
        try:
            s.close()
        except Exception:       # best effort at interpreter exit
            pass
    _shared.clear()


def shared_postgres():
    """One PostgreSQL for the whole pytest process (initdb costs seconds);
    tests isolate themselves with a database each (pg.uri(unique name)).
    Restarted if a test left it stopped."""
    pg = _shared.get("pg")
    if pg is None:
        import atexit
        if not _shared:
            atexit.register(_close_shared)
        pg = _shared["pg"] = Postgres()
        pg.start()
    elif not pg.running():
        pg.start()
    return pg


def shared_influx():
    """One influxd for the whole pytest process; a database per test."""
    ix = _shared.get("influx")
    if ix is None:
        import atexit
        if not _shared:
            atexit.register(_close_shared)
        ix = _shared["influx"] = Influx()
        ix.start()
    elif ix.proc.poll() is not None:
        ix.start()
    return ix
