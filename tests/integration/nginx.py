"""nginx.py - a real Debian nginx in front of dronegate gateways, for the
integration tests (tests/integration/test_nginx.py) and bench/nginx3.sh.

    ngx = Nginx(tmpdir, gateways=[("127.0.0.1", p1), ...])
    ngx.start()                 # free loopback ports, self-signed cert, waits
    ngx.wss_base                # "wss://127.0.0.1:PORT"  (TLS listener)
    ngx.ws_base                 # "ws://127.0.0.1:PORT"   (plain listener)
    ngx.ssl_context()           # trusts only the test's certificate
    ngx.stop()                  # SIGTERM, must exit 0

or, in a test module, the `nginx_factory` fixture (import it from here):
every nginx it made is stopped at the end of the test.

What it runs: deploy/nginx/dronegate.conf (the file operators use) rendered
with `envsubst` exactly as its header says, included from a small main
configuration that keeps everything in the temp dir: pid file, error and
access logs, client-body/proxy/fastcgi/uwsgi/scgi temp paths (`-p DIR`, and
`-e` so not even the start-up error log goes to /var/log/nginx). As root,
the workers run as root (`user root;`: the pytest temp dir is mode 0700, an
unprivileged worker could not reach its temp paths); as another user the
`user` line is left out and everything runs as that user.

The certificate is made by the `openssl` CLI at start: a self-signed P-256
certificate for IP 127.0.0.1 / DNS localhost, valid 2 days; the client side
trusts exactly that certificate (ssl_context()).

Missing tools (nginx, openssl, envsubst) fail with a clear message; nothing
is skipped.

Environment:
  NGINX_BIN   default /usr/sbin/nginx
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "deploy" / "nginx" / "dronegate.conf"
NGINX = os.environ.get("NGINX_BIN") or "/usr/sbin/nginx"
PLACEHOLDERS = ("DG_SERVER_NAME", "DG_LISTEN_TLS", "DG_LISTEN_PLAIN", "DG_TLS_CERT", "DG_TLS_KEY",
                "DG_GATEWAYS", "DG_GRPC_GATEWAYS", "DG_LOG_DIR")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need(tool, pkg):
    path = tool if os.path.isabs(tool) else shutil.which(tool)
    if not path or not os.access(path, os.X_OK):
        raise AssertionError(f"{tool} not found: install the Debian package {pkg} "
                             f"(scripts/deps.d/nginx.list)")
    return path


def make_cert(dirpath):
    """Self-signed certificate + key made with the openssl CLI; returns (cert, key)."""
    openssl = _need("openssl", "openssl")
    cert, key = Path(dirpath) / "cert.pem", Path(dirpath) / "key.pem"
    p = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                        "-subj", "/CN=dronegate-test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"openssl req failed ({p.returncode}):\n{p.stderr}"
    return cert, key


def render(template_text, values):
    """Fill the placeholders with envsubst, as the header of dronegate.conf tells operators."""
    envsubst = _need("envsubst", "gettext-base")
    env = dict(os.environ)
    env.update({k: str(v) for k, v in values.items()})
    shell_format = " ".join("${%s}" % k for k in PLACEHOLDERS)
    p = subprocess.run([envsubst, shell_format], input=template_text, capture_output=True,
                       text=True, env=env, timeout=30)
    assert p.returncode == 0, f"envsubst failed: {p.stderr}"
    assert "${DG_" not in p.stdout, "a placeholder was left unfilled"
    return p.stdout


class Nginx:
    """One nginx master (1 worker by default) with deploy/nginx/dronegate.conf.

    gateways: [(host, port)] of the gateways' HTTP/WebSocket listeners.
    grpc_gateways: [(host, port)] for the gRPC upstream (default: free ports
        nobody listens on: the gateway has no gRPC server yet).
    edit: optional function(str) -> str applied to the rendered dronegate.conf
        (to break a line on purpose).
    server_opts: extra `server` parameters for each gateway line.
    """

    def __init__(self, workdir, gateways, grpc_gateways=None, template=CONF, edit=None,
                 worker_processes=1, worker_connections=4096,
                 server_opts="max_fails=1 fail_timeout=5s"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.gateways = list(gateways)
        self.grpc_gateways = list(grpc_gateways) if grpc_gateways else [("127.0.0.1", _free_port())
                                                                          for _ in self.gateways]
        self.template = Path(template)
        self.edit = edit
        self.worker_processes = worker_processes
        self.worker_connections = worker_connections
        self.server_opts = server_opts
        self.proc = None
        self.tls_port = self.plain_port = None
        self.cert = self.key = None
        self.returncode = None

    # -- paths

    @property
    def error_log(self):
        return self.dir / "logs" / "error.log"

    @property
    def access_log(self):
        return self.dir / "logs" / "dronegate-access.log"

    @property
    def wss_base(self):
        return f"wss://127.0.0.1:{self.tls_port}"

    @property
    def ws_base(self):
        return f"ws://127.0.0.1:{self.plain_port}"

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=str(self.cert))
        return ctx

    def errors(self):
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def accesses(self):
        try:
            return self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n=40):
        lines = self.errors().splitlines()
        return "\n".join(lines[-n:]) if lines else "(nginx error.log empty)"

    # -- configuration

    def _write_conf(self):
        d = self.dir
        for sub in ("logs", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        opts = f" {self.server_opts}" if self.server_opts else ""
        (d / "gateways.conf").write_text("".join(f"server {h}:{p}{opts};\n" for h, p in self.gateways))
        (d / "grpc-gateways.conf").write_text("".join(f"server {h}:{p}{opts};\n" for h, p in self.grpc_gateways))
        site = render(self.template.read_text(), {
            "DG_SERVER_NAME": "localhost",
            "DG_LISTEN_TLS": f"127.0.0.1:{self.tls_port}",
            "DG_LISTEN_PLAIN": f"127.0.0.1:{self.plain_port}",
            "DG_TLS_CERT": self.cert,
            "DG_TLS_KEY": self.key,
            "DG_GATEWAYS": d / "gateways.conf",
            "DG_GRPC_GATEWAYS": d / "grpc-gateways.conf",
            "DG_LOG_DIR": d / "logs",
        })
        if self.edit:
            site = self.edit(site)
        (d / "dronegate.conf").write_text(site)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (d / "nginx.conf").write_text(f"""# generated by tests/integration/nginx.py
{user}worker_processes {self.worker_processes};
worker_rlimit_nofile {self.worker_connections * 2 + 64};
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;

events {{
    worker_connections {self.worker_connections};
}}

http {{
    default_type application/octet-stream;
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/dronegate.conf;
}}
""")

    def _cmd(self, *extra):
        d = self.dir
        return [NGINX, "-p", f"{d}/", "-c", f"{d}/nginx.conf", "-e", f"{d}/logs/error.log", *extra]

    # -- life cycle

    def start(self, timeout=15):
        _need(NGINX, "nginx")
        if self.cert is None:
            self.cert, self.key = make_cert(self.dir)
        for attempt in range(4):
            self.tls_port, self.plain_port = _free_port(), _free_port()
            self._write_conf()
            t = subprocess.run(self._cmd("-t"), capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
            assert t.returncode == 0, f"nginx -t refused the configuration:\n{t.stderr}\n{t.stdout}"
            self._out = open(self.dir / "logs" / "stderr.log", "ab")
            self.proc = subprocess.Popen(self._cmd("-g", "daemon off;"), stdin=subprocess.DEVNULL,
                                         stdout=self._out, stderr=self._out, start_new_session=True)
            _ALL.append(self)
            if self._wait_listening(timeout):
                return self
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait()
            if "Address already in use" in self.errors() and attempt < 3:
                continue        # lost a port race: pick new ports
            raise AssertionError(f"nginx did not start (exit {rc}):\n{self.tail()}")
        raise AssertionError("nginx: could not find free ports")

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            ok = True
            for port in (self.tls_port, self.plain_port):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    ok = False
            if ok:
                return True
            time.sleep(0.02)
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def reload(self):
        """Re-render the configuration and SIGHUP the master (new workers)."""
        self._write_conf()
        t = subprocess.run(self._cmd("-t"), capture_output=True, text=True, timeout=30)
        assert t.returncode == 0, f"nginx -t refused the configuration:\n{t.stderr}"
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=15):
        """Fast shutdown (SIGTERM: open WebSocket tunnels are cut); must exit 0."""
        if self.proc is None or self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"nginx did not exit within {timeout}s of SIGTERM\n{self.tail()}")
        finally:
            self._out.close()
        self.returncode = rc
        assert rc == 0, f"nginx exited with {rc}\n{self.tail()}"
        return rc


_ALL = []


def kill_leftovers():
    for n in _ALL:
        if n.proc is not None and n.proc.poll() is None:
            try:
                os.killpg(n.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            n.proc.wait()


class NginxFactory:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.made = []

    def __call__(self, gateways, start=True, **kw):
        n = Nginx(self.tmp / f"nginx{len(self.made)}", gateways, **kw)
        self.made.append(n)
        if start:
            n.start()
        return n

    def finish(self):
        errors = []
        for n in self.made:
            try:
                n.stop()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def nginx_factory(tmp_path, request):
    f = NginxFactory(tmp_path)
    yield f
    try:
        f.finish()
    finally:
        kill_leftovers()
