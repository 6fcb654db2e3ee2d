"""conftest.py - fixtures for the dronegate integration tests.

Fixtures
  server_factory  function scope: make(**Server kwargs) -> started Server in a
                  fresh temp dir; every server still running at the end of the
                  test is stopped with SIGTERM, must exit 0 and leave no
                  sanitizer report in its stderr.
  srv             a shared default server (module scope, SQLite) for tests
                  that only need unique drone ids; checked alive and clean
                  after every test.

On failure, the stderr tail of every server a test used is attached to the
report ("dronegate stderr" sections).
"""
import pytest

import dg


class ServerFactory:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.servers = []

    def __call__(self, start=True, **kw):
        s = dg.Server(self.tmp / f"srv{len(self.servers)}", **kw)
        self.servers.append(s)
        if start:
            s.start()
        return s

    def finish(self):
        errors = []
        for s in self.servers:
            if s.start_failed and not s.alive():
                continue        # the test already failed with the server's stderr
            try:
                if s.alive():
                    s.stop()
                else:
                    s.check_clean(whole=True)
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def server_factory(tmp_path):
    f = ServerFactory(tmp_path)
    yield f
    f.finish()


def shared_server(tmp_path_factory, name, **kw):
    s = dg.Server(tmp_path_factory.mktemp(name), **kw)
    s.start()
    return s


class _Shared:
    """A module-scoped server that is restarted if a test killed it."""

    def __init__(self, tmp_path_factory, name, **kw):
        self.tpf, self.name, self.kw = tmp_path_factory, name, kw
        self.server = shared_server(tmp_path_factory, name, **kw)
        self.servers = [self.server]

    def before(self):
        if not self.server.alive():
            self.server = shared_server(self.tpf, self.name, **self.kw)
            self.servers.append(self.server)
        return self.server

    def after(self):
        self.server.check_alive()

    def finish(self):
        errors = []
        for s in self.servers:
            try:
                if s.alive():
                    s.stop()
                else:
                    s.check_clean(whole=True)
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            pytest.fail(f"shared server '{self.name}' (used by every test of this module) failed "
                        f"at the end of its life:\n" + "\n\n".join(errors), pytrace=False)


def shared_fixture(name, **kw):
    """Declare a shared server fixture called `name`: one server per module
    (started with Server(**kw)), restarted if a test killed it, checked alive
    and free of sanitizer reports after each test. Use in a test module as
        _small_mod, _small = shared_fixture("small_srv", args=["--max-message", "4096"])
    (both returned fixtures must be bound to module attributes).
    """
    modname = f"_{name}_module"

    @pytest.fixture(scope="module", name=modname)
    def _mod(tmp_path_factory):
        sh = _Shared(tmp_path_factory, name, **kw)
        yield sh
        sh.finish()

    @pytest.fixture(name=name)
    def _fn(request):
        sh = request.getfixturevalue(modname)
        s = sh.before()
        yield s
        sh.after()

    return _mod, _fn


_srv_module, _srv = shared_fixture("srv")


def _servers_of(item):
    found = []
    for v in getattr(item, "funcargs", {}).values():
        if isinstance(v, dg.Server):
            found.append(v)
        for s in getattr(v, "servers", []) or []:
            if isinstance(s, dg.Server):
                found.append(s)
    uniq = []
    for s in found:
        if all(s is not u for u in uniq):
            uniq.append(s)
    return uniq


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, s in enumerate(_servers_of(item)):
            lines = s.all_stderr().splitlines()
            tail = "\n".join(lines[-60:]) or "(empty)"
            rep.sections.append((f"dronegate stderr (server {i}, port {s.port}, {s.dir})", tail))


def pytest_sessionfinish(session, exitstatus):
    dg._kill_leftovers()


def pytest_report_header(config):
    return [f"dronegate: {dg.BIN} (asan={dg.ASAN}, timeout scale {dg.SCALE})", f"sim: {dg.SIM}"]
