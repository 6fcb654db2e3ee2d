"""rabbit.py - a throw-away RabbitMQ (Debian rabbitmq-server) for the tests
and the AMQP benchmark.

    with rabbit.Rabbit() as rb:            # fresh temp dir, free loopback ports
        uri = rb.uri("q1")                 # amqp://guest:guest@127.0.0.1:PORT/%2f?queue=q1
        rb.stop(); ...; rb.start()         # same ports, same data directory
        rb.ctl("list_queues")              # rabbitmqctl against this node

Everything lives in a directory from tempfile.mkdtemp(), removed at close():
mnesia (RABBITMQ_MNESIA_BASE), logs (RABBITMQ_LOG_BASE), the Erlang cookie
(HOME), an empty enabled-plugins file (no management plugin, no port 15672).
The node listens on 127.0.0.1 only: AMQP on RABBITMQ_NODE_PORT, distribution
on RABBITMQ_DIST_PORT, and its own epmd on ERL_EPMD_PORT (never the system's
4369), all free ports; the node is rabbit-<port>@localhost so several test
modules can run side by side. The server runs as root directly
(/usr/lib/rabbitmq/bin/rabbitmq-server, not the /usr/sbin wrapper that
switches to the rabbitmq user and its shared /var/lib/rabbitmq).

No fixed sleeps: start() waits on `rabbitmqctl await_startup` (with a
deadline); stop() waits for the process to exit.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

RABBIT_BIN = Path(os.environ.get("RABBIT_BIN", "/usr/lib/rabbitmq/bin"))


def available():
    return (RABBIT_BIN / "rabbitmq-server").exists()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rabbit:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="dg-rabbit-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        while len({self.port, self.dist_port, self.epmd_port}) < 3:
            self.dist_port, self.epmd_port = free_port(), free_port()
        self.node = f"rabbit-{self.port}@localhost"
        self.proc = None
        (self.dir / "home").mkdir()
        (self.dir / "mnesia").mkdir()
        (self.dir / "log").mkdir()
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(
            "listeners.tcp.default = 127.0.0.1:%d\n"
            "loopback_users = none\n"
            # disk alarms would stop publishers on a nearly full test disk
            "disk_free_limit.absolute = 1MB\n" % self.port)
        self.env = dict(os.environ)
        self.env.update({
            "HOME": str(self.dir / "home"),
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbit.pid"),
            "RABBITMQ_LOGS": str(self.dir / "log" / "rabbit.log"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
        })
        (self.dir / "advanced.config").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")

    def ctl(self, *args, timeout=60, check=True):
        r = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
                           env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def log_tail(self, n=40):
        try:
            return "\n".join((self.dir / "log" / "rabbit.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self, timeout=90):
        out = open(self.dir / "server.out", "ab")
        self.proc = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited {self.proc.returncode}\n"
                                   + (self.dir / "server.out").read_text(errors="replace")[-3000:])
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("rabbitmq-server did not start\n" + self.log_tail())
            r = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, "await_startup",
                                "--timeout", str(max(1, int(min(left, 30))))],
                               env=self.env, capture_output=True, text=True, timeout=left + 10)
            if r.returncode == 0:
                return self
            # the node may not be registered with epmd yet: await_startup
            # fails at once; wait for the process a moment, then ask again
            try:
                self.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=60):
        """Orderly stop (SIGTERM to the node: rabbitmq-server traps it)."""
        if not self.running():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        """kill -9 the whole node (its process group)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def close(self):
        self.stop()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)   # leftovers (epmd, erl_child_setup)
            except ProcessLookupError:
                pass
        # our own epmd (ERL_EPMD_PORT) daemonised out of the process group
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env,
                       capture_output=True, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def uri(self, queue, type=None, user="guest", password="guest", vhost="/", **params):
        q = {"queue": queue}
        if type:
            q["type"] = type
        q.update(params)
        return (f"amqp://{user}:{password}@127.0.0.1:{self.port}/"
                f"{urllib.parse.quote(vhost, safe='')}?{urllib.parse.urlencode(q)}")

    def pika_params(self):
        import pika
        return pika.ConnectionParameters(host="127.0.0.1", port=self.port,
                                         credentials=pika.PlainCredentials("guest", "guest"))

    def message_count(self, queue):
        import pika
        c = pika.BlockingConnection(self.pika_params())
        try:
            return c.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            c.close()


def module_fixture():
    """One started broker for a test module, closed at its end:
    rb = pytest.fixture(scope="module", name="rb")(rabbit.module_fixture)"""
    r = Rabbit()
    try:
        r.start()
        yield r
    finally:
        r.close()
