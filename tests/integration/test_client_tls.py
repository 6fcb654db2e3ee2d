"""libdronegate over wss:// (OpenSSL): the drone (examples/drone.c) talks TLS
to a real nginx (Debian's, started here in a temp dir on a free loopback
port) that terminates TLS and proxies the WebSocket to the real gateway.

Certificates are made by the test with the openssl CLI: a test CA, a server
certificate for "localhost" signed by it (served only for SNI "localhost"),
and a self-signed "wrong.example" certificate on nginx's default server. So:
  * with --ca and SNI localhost: every sample is stored exactly once;
  * without --ca (the system store, which does not know the test CA) the
    handshake fails on verification: verification is on by default;
  * without SNI (connecting to an IP, the name checked is the IP) nginx
    serves the default certificate and verification fails too.
"""
import shutil
import subprocess
import time

import pytest

import dg
from dg import T, free_port, new_id, wait_until
from test_client import DRONE, _need_drone, check_exactly_once, finish_drone  # noqa: F401

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def sh(*args, cwd):
    p = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"{' '.join(args)} failed:\n{p.stderr}"


def make_certs(d):
    sh(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
       "-days", "2", "-subj", "/CN=dronegate test CA", cwd=d)
    sh(OPENSSL, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
       "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
    sh(OPENSSL, "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
       "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    sh(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "wrong.key", "-out", "wrong.pem",
       "-days", "2", "-subj", "/CN=wrong.example", "-addext", "subjectAltName=DNS:wrong.example", cwd=d)


@pytest.fixture
def tls_gateway(server_factory, tmp_path):
    for tool in (NGINX, OPENSSL):
        if not shutil.which(tool) and not shutil.os.access(tool, shutil.os.X_OK):
            pytest.fail(f"{tool} is missing: apt-get install nginx openssl (scripts/deps.d/client.list)",
                        pytrace=False)
    srv = server_factory()
    d = tmp_path / "nginx"
    d.mkdir()
    make_certs(d)
    port = free_port()
    (d / "nginx.conf").write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl default_server;
        server_name _;
        ssl_certificate {d}/wrong.pem;
        ssl_certificate_key {d}/wrong.key;
        return 421;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {d}/srv.pem;
        ssl_certificate_key {d}/srv.key;
        location /ws/ {{
            proxy_pass http://127.0.0.1:{srv.port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 60s;
        }}
    }}
}}
""")
    log = open(d / "stderr.log", "wb")
    ng = subprocess.Popen([NGINX, "-p", str(d), "-c", str(d / "nginx.conf")], stdout=log, stderr=log,
                          stdin=subprocess.DEVNULL)

    def up():
        if ng.poll() is not None:
            raise AssertionError(f"nginx exited {ng.returncode}:\n{(d / 'stderr.log').read_text()}"
                                 f"\n{(d / 'error.log').read_text() if (d / 'error.log').exists() else ''}")
        try:
            with dg.socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False
    wait_until(up, T(10), "nginx to listen")
    yield srv, port, d
    ng.terminate()
    try:
        ng.wait(timeout=10)
    except subprocess.TimeoutExpired:
        ng.kill()
        ng.wait()


def test_wss_verified_with_sni_stores_everything(tls_gateway, tmp_path):
    srv, port, d = tls_gateway
    drone = new_id("tls")
    ts0 = int(time.time() * 1000) - 600_000
    p = subprocess.Popen([DRONE, "--url", f"wss://localhost:{port}", "--id", drone, "--count", "800",
                          "--rate", "0", "--ts0", str(ts0), "--ca", str(d / "ca.pem"),
                          "--flush-ms", str(int(T(20) * 1000))],
                         stdout=subprocess.PIPE, stderr=open(tmp_path / "drone.stderr", "wb"),
                         stdin=subprocess.DEVNULL, env=dg.clean_env())
    p.errlog = tmp_path / "drone.stderr"
    rc, st, err = finish_drone(p, T(30))
    assert rc == 0 and st["left"] == 0 and st["given"] == 800, f"{st}\n{err[-2000:]}"
    check_exactly_once(srv, drone, ts0, 800)


def test_wss_verification_is_on_by_default(tls_gateway, tmp_path):
    srv, port, d = tls_gateway
    drone = new_id("tlsno")
    p = subprocess.Popen([DRONE, "--url", f"wss://localhost:{port}", "--id", drone, "--count", "5",
                          "--rate", "0", "--flush-ms", "800", "--backoff-min-ms", "50"],
                         stdout=subprocess.PIPE, stderr=open(tmp_path / "no-ca.stderr", "wb"),
                         stdin=subprocess.DEVNULL, env=dg.clean_env())
    p.errlog = tmp_path / "no-ca.stderr"
    rc, st, err = finish_drone(p, T(20))
    assert rc == 3 and st["sessions"] == 0 and st["left"] == 5, st
    assert "certificate" in err and "tls" in err, err[-2000:]
    assert srv.get(f"/api/v1/drones/{drone}").status == 404   # never got through


def test_wss_without_sni_gets_the_default_certificate(tls_gateway, tmp_path):
    srv, port, d = tls_gateway
    drone = new_id("tlsip")
    # an IP literal: no SNI is sent, nginx answers with its default server's
    # certificate (wrong.example), which neither chains to the CA nor matches
    p = subprocess.Popen([DRONE, "--url", f"wss://127.0.0.1:{port}", "--id", drone, "--count", "5",
                          "--rate", "0", "--flush-ms", "800", "--ca", str(d / "ca.pem")],
                         stdout=subprocess.PIPE, stderr=open(tmp_path / "ip.stderr", "wb"),
                         stdin=subprocess.DEVNULL, env=dg.clean_env())
    p.errlog = tmp_path / "ip.stderr"
    rc, st, err = finish_drone(p, T(20))
    assert rc == 3 and st["sessions"] == 0, st
    assert "certificate" in err, err[-2000:]
