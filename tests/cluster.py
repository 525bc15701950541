"""A throw-away PostgreSQL server and a two-node Ray cluster on this machine, for the `cluster` tests.

Both are started as child processes of the test session and everything they started is killed by
process id when they stop (also when a test fails). The PostgreSQL server listens on 127.0.0.1 and a
private unix socket only, and runs as an unprivileged user when the tests run as root (PostgreSQL
refuses root). The Ray nodes have their own temporary directory, so another Ray on the machine is never
touched (`ray stop` would stop every Ray here: it is never called).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

PG_USER = "nasearch"
PG_PASSWORD = "s3cret-pw"
OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's minimum is about 75 MB; the trials pass tiny objects
RAY_FAST_HEALTH = {
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}


# Token authentication with a token of this test session's own, for the nodes and every driver. Ray reads
# it once per process, so it is set here, when the test session (or the benchmark) starts, before any Ray
# import; a token in ~/.ray from another Ray on the machine then plays no part.
RAY_CLIENT_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(RAY_CLIENT_ENV)


class Unavailable(RuntimeError):
    """PostgreSQL or Ray cannot start on this machine; the message says why (the tests skip with it)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bindir() -> Path:
    candidates = [os.environ.get("NASEARCH_PG_BINDIR", "")]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb") or "").parent))
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "postgres").is_file():
            return Path(c)
    raise Unavailable("no PostgreSQL server binaries (initdb, postgres): apt-get install postgresql")


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant of it (collected first, so none is orphaned unseen)."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)


class PostgresServer:
    """initdb into a temporary directory, `postgres` on 127.0.0.1:PORT; `url()` makes a fresh database."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="nasearch-pg-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._databases = 0
        self._owner = self._server_user()

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        raise Unavailable("running as root and neither a `postgres` nor a `nobody` user to run PostgreSQL as")

    def _run(self, args: list[str], **kw: object) -> subprocess.Popen:
        user = (
            {} if self._owner is None else {"user": self._owner.pw_uid, "group": self._owner.pw_gid, "extra_groups": []}
        )
        return subprocess.Popen(
            args, cwd=self.dir, env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"}, **user, **kw
        )  # type: ignore[call-overload]

    def start(self) -> PostgresServer:
        import psycopg  # noqa: F401 - the driver the storage uses (the `cluster` extra): missing is a failure

        if self._owner is not None:
            os.chown(self.dir, self._owner.pw_uid, self._owner.pw_gid)
        pwfile = self.dir / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self._owner is not None:
            os.chown(pwfile, self._owner.pw_uid, self._owner.pw_gid)
        log = open(self.dir / "server.log", "wb")  # noqa: SIM115 - the server's log for the test session
        init = self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                "data",
                "-U",
                PG_USER,
                "--pwfile",
                "pw",
                "--auth",
                "scram-sha-256",
                "--locale",
                "C",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if init.wait(timeout=120) != 0:
            raise Unavailable(f"initdb failed: {(self.dir / 'server.log').read_text()[-400:]}")
        self.proc = self._run(
            [
                str(self.bindir / "postgres"),
                "-D",
                "data",
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.dir}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "shared_buffers=16MB",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"postgres exited: {(self.dir / 'server.log').read_text()[-400:]}")
            try:
                self._admin("SELECT 1")
                return self
            except Exception:
                time.sleep(0.2)
        raise Unavailable("postgres did not accept connections within 60 s")

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=PG_USER,
            password=PG_PASSWORD,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            conn.execute(sql)

    def url(self) -> str:
        """A new, empty database on the server, as the URL a user would write (password included)."""
        self._databases += 1
        name = f"study{self._databases}"
        self._admin(f"CREATE DATABASE {name}")
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, stop
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _kill_tree(self.proc.pid)
        shutil.rmtree(self.dir, ignore_errors=True)


def _ray_bin() -> str:
    exe = Path(sys.executable).parent / "ray"
    found = str(exe) if exe.is_file() else shutil.which("ray")
    if not found:
        raise Unavailable("no `ray` command (pip install 'nasearch[ray]')")
    return found


class RayCluster:
    """`ray start --head` (1 CPU) and a worker node (1 CPU, optionally a custom resource), each blocking
    as a child of this process, in a private temporary directory."""

    def __init__(self) -> None:
        self.ray = _ray_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="nsray-", dir="/tmp"))  # short: unix socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.head: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.client_env = dict(RAY_CLIENT_ENV)
        self.env = {
            **os.environ,
            **RAY_FAST_HEALTH,
            **self.client_env,
            "OMP_NUM_THREADS": "1",
            "RAY_DEDUP_LOGS": "0",
            "PYTHONPATH": os.pathsep.join(sys.path),
        }

    def _start(self, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.dir / log, "ab")  # noqa: SIM115 - the node's log for the test session
        return subprocess.Popen(
            [
                self.ray,
                "start",
                "--block",
                "--num-cpus",
                "1",
                "--num-gpus",
                "0",
                "--object-store-memory",
                str(OBJECT_STORE_BYTES),
                "--disable-usage-stats",
                *args,
            ],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )

    def start(self) -> RayCluster:
        self.head = self._start(
            [
                "--head",
                "--node-ip-address",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--include-dashboard",
                "false",
                "--dashboard-port",
                str(free_port()),
                "--temp-dir",
                str(self.dir),
            ],
            "head.log",
        )
        self.wait_for({"CPU": 1.0}, timeout=90)
        return self

    def add_node(self, name: str, resources: dict[str, float] | None = None) -> None:
        args = ["--address", self.address, "--node-ip-address", "127.0.0.1"]
        if resources:
            args += ["--resources", json.dumps(resources)]
        self.workers[name] = self._start(args, f"{name}.log")

    def kill_node(self, name: str) -> None:
        """SIGKILL a worker node: `ray start`, its raylet, its agents and the workers running trials."""
        _kill_tree(self.workers.pop(name).pid)

    def resources(self) -> dict[str, float]:
        """The cluster's alive resources, asked through a short-lived driver process."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False); "
            "print(json.dumps(ray.cluster_resources()))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if out.returncode != 0:
            return {}
        return json.loads(out.stdout.strip().splitlines()[-1])

    def wait_for(self, resources: dict[str, float], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.head is not None and self.head.poll() is not None:
                raise Unavailable(f"the Ray head node exited: {(self.dir / 'head.log').read_text()[-400:]}")
            have = self.resources()
            if all(have.get(k, 0.0) >= v for k, v in resources.items()):
                return
            time.sleep(0.5)
        raise Unavailable(f"the Ray cluster did not reach {resources} within {timeout} s")

    def stop(self) -> None:
        for name in list(self.workers):
            self.kill_node(name)
        if self.head is not None:
            _kill_tree(self.head.pid)
        for p in psutil.process_iter(["pid", "cmdline"]):  # daemons the nodes detached, by our directory
            with contextlib.suppress(psutil.Error):
                if any(str(self.dir) in arg for arg in p.info["cmdline"] or []):
                    _kill_tree(p.info["pid"])
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session; each test takes a fresh database with `url()`."""
    server = PostgresServer()
    try:
        server.start()
    except Unavailable as exc:
        server.stop()
        pytest.skip(f"PostgreSQL cannot start here: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A head node (1 CPU) and a node `t4` (1 CPU and the custom resource T4), as separate processes."""
    pytest.importorskip("ray")
    cluster = RayCluster()
    try:
        cluster.start()
        cluster.add_node("t4", {"T4": 1.0})
        cluster.wait_for({"CPU": 2.0, "T4": 1.0})
    except Unavailable as exc:
        cluster.stop()
        pytest.skip(f"a Ray cluster cannot start here: {exc}")
    except BaseException:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()
