"""A local single-node Kafka (KRaft) and Redis for development and tests, without Docker.

``up`` starts both as background daemons bound to loopback, waits until they answer and creates
Vigil's topics; ``down`` stops what ``up`` started; ``status`` tells what runs and answers.
Everything lives under ``settings.services.run_dir`` (git-ignored)::

    .run/kafka/server.properties   rendered from services/kafka/server.properties.template
    .run/kafka/data/                KRaft metadata and topic logs (formatted on first start)
    .run/kafka/logs/                server.log, controller.log, stdout.log
    .run/kafka/kafka.pid
    .run/redis/redis.conf           rendered here (mode 0600: it may hold requirepass)
    .run/redis/data/  redis.log  stdout.log  redis.pid

The Kafka jars come from Maven Central through ``services/kafka/pom.xml``, fetched once into
``settings.services.cache_dir / "kafka" / <version>``. Redis is the ``redis-server`` on PATH
(installed with apt-get when missing and running as root).

A Kafka or Redis that ``up`` did not start but that already answers on the configured address
is used as it is and never stopped by ``down``.

``up``, ``down`` and ``status`` are synchronous and run their own event loop: from async code
call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TypedDict
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.config import Settings
from services.topics import ensure_topics, kafka_answers

Echo = Callable[[str], None]

SERVICES_DIR = Path(__file__).resolve().parent
KAFKA_POM = SERVICES_DIR / "kafka" / "pom.xml"
SERVER_PROPERTIES_TEMPLATE = SERVICES_DIR / "kafka" / "server.properties.template"
KAFKA_LOG4J = SERVICES_DIR / "kafka" / "log4j2.properties"

_POLL_SECONDS = 0.25
_LOG_TAIL_LINES = 40
_HEAP = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}

# Popen handles of the daemons this process started, so that they are reaped when they exit.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class ServiceError(RuntimeError):
    """A local service could not be fetched, started, reached or stopped."""


class ServiceStatus(TypedDict):
    """What ``status`` reports for one service."""

    address: str
    pid: int | None  # from the pid file of a daemon `up` started, when it still runs
    running: bool  # that daemon is alive
    answering: bool  # something answers on the configured address (ours or not)


@dataclass(frozen=True)
class Endpoint:
    """A host and TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RunLayout:
    """Every path under the run folder (absolute)."""

    run_dir: Path

    @classmethod
    def of(cls, settings: Settings) -> RunLayout:
        """The layout of ``settings.services.run_dir``, made absolute."""
        return cls(settings.services.run_dir.resolve())

    @property
    def lock(self) -> Path:
        return self.run_dir / ".services.lock"

    @property
    def kafka_dir(self) -> Path:
        return self.run_dir / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_logs(self) -> Path:
        return self.kafka_dir / "logs"

    @property
    def kafka_config(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def kafka_stdout(self) -> Path:
        return self.kafka_logs / "stdout.log"

    @property
    def redis_dir(self) -> Path:
        return self.run_dir / "redis"

    @property
    def redis_data(self) -> Path:
        return self.redis_dir / "data"

    @property
    def redis_config(self) -> Path:
        return self.redis_dir / "redis.conf"

    @property
    def redis_log(self) -> Path:
        return self.redis_dir / "redis.log"

    @property
    def redis_pid(self) -> Path:
        return self.redis_dir / "redis.pid"

    @property
    def redis_stdout(self) -> Path:
        return self.redis_dir / "stdout.log"


# --------------------------------------------------------------------------- addresses


def kafka_endpoint(settings: Settings) -> Endpoint:
    """The broker address from ``kafka.bootstrap_servers`` (``host:port``, one server)."""
    servers = [s.strip() for s in settings.kafka.bootstrap_servers.split(",") if s.strip()]
    if len(servers) != 1:
        raise ServiceError(
            f"the local Kafka is one broker; bootstrap_servers lists {len(servers)} servers"
        )
    host, sep, port = servers[0].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ServiceError(f"kafka.bootstrap_servers must be host:port, not {servers[0]!r}")
    return Endpoint(host.strip("[]"), int(port))


def kafka_controller_endpoint(settings: Settings) -> Endpoint:
    """The KRaft controller listener: the broker's port + 1, on the same loopback host."""
    broker = kafka_endpoint(settings)
    return Endpoint(broker.host, broker.port + 1)


def redis_endpoint(settings: Settings) -> Endpoint:
    """Host and port from ``redis.url`` (``redis://[:password@]host[:port][/db]``)."""
    parts = urlsplit(settings.redis.url)
    if parts.scheme != "redis":
        raise ServiceError(f"the local Redis speaks redis://, not {parts.scheme}://")
    return Endpoint(parts.hostname or "127.0.0.1", parts.port or 6379)


def redis_password(settings: Settings) -> str | None:
    """``redis.password`` if set, else a password written in ``redis.url``, else None."""
    if settings.redis.password is not None and settings.redis.password.get_secret_value():
        return settings.redis.password.get_secret_value()
    return urlsplit(settings.redis.url).password or None


def redacted_redis_url(url: str) -> str:
    """``url`` without its password, fit to print or log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def loopback_host(endpoint: Endpoint, what: str) -> str:
    """The IPv4 loopback address a local service binds to for ``endpoint``.

    ``localhost`` becomes ``127.0.0.1``; anything that is not loopback is refused, because the
    services started here must never listen beyond this machine.
    """
    if endpoint.host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(endpoint.host)
    except ValueError:
        address = None
    if address is None or address.version != 4 or not address.is_loopback:
        raise ServiceError(
            f"the local {what} binds to loopback only; {endpoint.host} is not an IPv4 loopback "
            f"address (set it to 127.0.0.1, or run your own {what} there)"
        )
    return str(address)


# --------------------------------------------------------------------------- rendering


def kafka_version(pom: Path = KAFKA_POM) -> str:
    """The version of the ``kafka_2.*`` dependency in the broker's Maven pom."""
    root = ET.parse(pom).getroot()  # noqa: S314 - our own pom, in the repository
    properties = {
        el.tag.split("}")[-1]: (el.text or "").strip()
        for el in root.findall("m:properties/*", _POM_NS)
    }
    for dep in root.findall("m:dependencies/m:dependency", _POM_NS):
        artifact = dep.findtext("m:artifactId", default="", namespaces=_POM_NS)
        if artifact.startswith("kafka_"):
            version = dep.findtext("m:version", default="", namespaces=_POM_NS).strip()
            match = re.fullmatch(r"\$\{(.+)\}", version)
            return properties.get(match.group(1), "") if match else version
    raise ServiceError(f"{pom} has no kafka_2.* dependency")


def render_server_properties(settings: Settings, layout: RunLayout) -> str:
    """The broker's server.properties: loopback listeners, ports and partitions from settings."""
    broker = kafka_endpoint(settings)
    host = loopback_host(broker, "Kafka")
    template = Template(SERVER_PROPERTIES_TEMPLATE.read_text())
    return template.substitute(
        host=host,
        port=broker.port,
        controller_port=broker.port + 1,
        log_dirs=layout.kafka_data,
        partitions=settings.kafka.partitions,
    )


def render_redis_conf(settings: Settings, layout: RunLayout) -> str:
    """redis.conf: loopback, port from ``redis.url``, data and log under the run folder."""
    endpoint = redis_endpoint(settings)
    lines = [
        "# Rendered by services/local.py on every `vigil services up`; do not edit.",
        f"bind {loopback_host(endpoint, 'Redis')}",
        f"port {endpoint.port}",
        "protected-mode yes",
        "daemonize no",
        f"dir {_redis_quote(str(layout.redis_data))}",
        f"logfile {_redis_quote(str(layout.redis_log))}",
        "dbfilename dump.rdb",
        "save 3600 1 300 100 60 10000",
        "appendonly yes",
        "appendfsync everysec",
    ]
    password = redis_password(settings)
    if password:
        lines.append(f"requirepass {_redis_quote(password)}")
    return "\n".join(lines) + "\n"


def _redis_quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def kafka_command(settings: Settings, jars: Path, layout: RunLayout) -> list[str]:
    """The JVM command line that runs the broker."""
    return [
        *_java(settings.services.kafka_heap, layout),
        "-cp",
        f"{jars}/*",
        "kafka.Kafka",
        str(layout.kafka_config),
    ]


def _java(heap: str, layout: RunLayout) -> list[str]:
    if not _HEAP.match(heap):
        raise ServiceError(f"services.kafka_heap must look like 768m or 1g, not {heap!r}")
    return [
        _require_tool(
            "java", "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre)"
        ),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={layout.kafka_logs}",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
    ]


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, base64url, 22 characters, not starting with '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class _Daemon:
    name: str
    pid_file: Path
    markers: tuple[str, ...]  # all appear in /proc/<pid>/cmdline when the pid is ours
    logs: tuple[Path, ...]


def _kafka_daemon(layout: RunLayout) -> _Daemon:
    return _Daemon(
        "kafka",
        layout.kafka_pid,
        ("kafka.Kafka", str(layout.kafka_config)),
        (layout.kafka_logs / "server.log", layout.kafka_stdout),
    )


def _redis_daemon(layout: RunLayout, settings: Settings) -> _Daemon:
    # redis-server retitles itself "redis-server 127.0.0.1:6379": the port tells ours apart.
    port = urlsplit(settings.redis.url).port or 6379
    return _Daemon(
        "redis",
        layout.redis_pid,
        ("redis-server", f":{port}"),
        (layout.redis_log, layout.redis_stdout),
    )


def process_alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie does not count; our own children are reaped)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    return True


def _cmdline(pid: int) -> str | None:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return None


def read_live_pid(pid_file: Path, *markers: str) -> int | None:
    """The pid in ``pid_file`` if that process still runs and is ours; else None.

    Ours means its command line holds every one of ``markers`` (not checked without /proc).

    A stale pid file (process gone, or the pid reused by another program) is removed.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return None
    cmdline = _cmdline(pid)
    if process_alive(pid) and (cmdline is None or all(m in cmdline for m in markers)):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def _spawn(command: list[str], daemon: _Daemon, stdout: Path, cwd: Path) -> int:
    """Start ``command`` in its own session (it outlives us) and write its pid file."""
    stdout.parent.mkdir(parents=True, exist_ok=True)
    with stdout.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    daemon.pid_file.write_text(f"{process.pid}\n")
    return process.pid


def _stop(pid: int, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL. True if it needed the SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_exit(pid, timeout):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_exit(pid, 10.0)
    return True


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def log_sizes(paths: tuple[Path, ...]) -> dict[Path, int]:
    """The current size of each file (0 when absent), to show only what a new run writes."""
    sizes = {}
    for path in paths:
        try:
            sizes[path] = path.stat().st_size
        except OSError:
            sizes[path] = 0
    return sizes


def log_tail(
    paths: tuple[Path, ...], since: dict[Path, int] | None = None, lines: int = _LOG_TAIL_LINES
) -> str:
    """The last ``lines`` lines of each file written after offset ``since[path]``."""
    chunks = []
    for path in paths:
        with contextlib.suppress(OSError):
            with path.open("rb") as handle:
                start = (since or {}).get(path, 0)
                handle.seek(start if start <= path.stat().st_size else 0)
                text = handle.read().decode(errors="replace").splitlines()[-lines:]
            if text:
                chunks.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
    return "\n".join(chunks) or "(no log written)"


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two `up`/`down` never race on one folder."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"`{name}` not found on PATH: {hint}")
    return path


# --------------------------------------------------------------------------- probes


def port_open(endpoint: Endpoint, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``endpoint``."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            return True
    except OSError:
        return False


def kafka_answering(settings: Settings, timeout: float = 3.0) -> bool:
    """True when a broker at ``kafka.bootstrap_servers`` answers a metadata request."""
    with contextlib.suppress(ServiceError):  # several servers: let the client try them all
        if not port_open(kafka_endpoint(settings)):
            return False
    return asyncio.run(kafka_answers(settings.kafka.bootstrap_servers, timeout))


def redis_answering(settings: Settings, timeout: float = 1.0) -> bool:
    """True when Redis at ``redis.url`` answers PING (with the configured password)."""
    if urlsplit(settings.redis.url).scheme == "redis" and not port_open(redis_endpoint(settings)):
        return False
    client = redis.Redis.from_url(
        settings.redis.url,
        password=redis_password(settings),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), retries=0),  # a probe: one try, the caller polls
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


# --------------------------------------------------------------------------- fetching tools


def fetch_kafka_jars(settings: Settings, echo: Echo = print) -> Path:
    """The folder of broker jars, fetched with Maven on first use (and when the pom changes)."""
    version = kafka_version()
    target = settings.services.cache_dir.resolve() / "kafka" / version
    marker = target / ".fetched"
    digest = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()
    with _locked(target.parent / ".fetch.lock"):
        if marker.is_file() and marker.read_text().strip() == digest:
            return target
        mvn = _require_tool("mvn", "install Maven (Debian: apt-get install maven)")
        echo(f"kafka: fetching Kafka {version} jars with Maven into {target} (first run only)")
        partial = target.with_name(f"{version}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise ServiceError(f"Maven could not fetch the Kafka jars:\n{output}")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        marker.write_text(digest + "\n")
    return target


def find_redis_server(echo: Echo = print) -> str:
    """``redis-server`` on PATH; installed with apt-get when missing and running as root."""
    path = shutil.which("redis-server")
    if path is not None:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        echo(
            "redis: redis-server not found; running: "
            "apt-get update && apt-get install -y redis-server"
        )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "redis-server"], check=True, env=env)
        path = shutil.which("redis-server")
        if path is not None:
            return path
    raise ServiceError(
        "redis-server not found on PATH: install Redis 7 (Debian: apt-get install redis-server), "
        "or point VIGIL_REDIS__URL at a Redis you run"
    )


# --------------------------------------------------------------------------- start


def _start_kafka(settings: Settings, layout: RunLayout, echo: Echo) -> int | None:
    """Start the broker unless one answers already; the pid to wait for, or None."""
    daemon = _kafka_daemon(layout)
    address = settings.kafka.bootstrap_servers
    pid = read_live_pid(daemon.pid_file, *daemon.markers)
    if pid is not None:
        echo(f"kafka: already running (pid {pid}) at {address}")
        return pid
    if _foreign_answers(
        port_open(kafka_endpoint(settings)),
        lambda: kafka_answering(settings),
        "Kafka",
        address,
        echo,
    ):
        return None
    jars = fetch_kafka_jars(settings, echo)
    for folder in (layout.kafka_data, layout.kafka_logs):
        folder.mkdir(parents=True, exist_ok=True)
    layout.kafka_config.write_text(render_server_properties(settings, layout))
    if not (layout.kafka_data / "meta.properties").exists():
        _format_kafka_storage(settings, jars, layout, echo)
    pid = _spawn(
        kafka_command(settings, jars, layout), daemon, layout.kafka_stdout, layout.kafka_dir
    )
    echo(f"kafka: started (pid {pid}, heap {settings.services.kafka_heap}) at {address}")
    return pid


def _format_kafka_storage(settings: Settings, jars: Path, layout: RunLayout, echo: Echo) -> None:
    """Format the KRaft log folder with a new cluster id (first start only)."""
    cluster_id = new_cluster_id()
    echo(f"kafka: formatting storage in {layout.kafka_data} (cluster id {cluster_id})")
    command = [
        *_java("256m", layout),
        "-cp",
        f"{jars}/*",
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        cluster_id,
        "-c",
        str(layout.kafka_config),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def _start_redis(settings: Settings, layout: RunLayout, echo: Echo) -> int | None:
    """Start Redis unless one answers already; the pid to wait for, or None."""
    daemon = _redis_daemon(layout, settings)
    address = redacted_redis_url(settings.redis.url)
    pid = read_live_pid(daemon.pid_file, *daemon.markers)
    if pid is not None:
        echo(f"redis: already running (pid {pid}) at {address}")
        return pid
    if _foreign_answers(
        port_open(redis_endpoint(settings)),
        lambda: redis_answering(settings),
        "Redis",
        address,
        echo,
    ):
        return None
    server = find_redis_server(echo)
    layout.redis_data.mkdir(parents=True, exist_ok=True)
    config = render_redis_conf(settings, layout)
    layout.redis_config.touch(mode=0o600)
    layout.redis_config.chmod(0o600)
    layout.redis_config.write_text(config)
    pid = _spawn([server, str(layout.redis_config)], daemon, layout.redis_stdout, layout.redis_dir)
    echo(f"redis: started (pid {pid}) at {address}")
    return pid


def _foreign_answers(
    is_open: bool, answers: Callable[[], bool], what: str, address: str, echo: Echo
) -> bool:
    """True (and say so) when a service `up` did not start already answers on ``address``."""
    if not is_open:
        return False
    if answers():
        echo(
            f"{what.lower()}: using the {what} already answering at {address} "
            "(not started by vigil)"
        )
        return True
    raise ServiceError(f"{address} is in use by something that does not answer as {what}")


@dataclass(frozen=True)
class _Start:
    """A daemon `up` waits for: its pid (None for a service it did not start) and log marks."""

    daemon: _Daemon
    pid: int | None
    log_marks: dict[Path, int]


def _start(daemon: _Daemon, start: Callable[[], int | None]) -> _Start:
    """Run ``start`` and remember where the daemon's logs stood before it."""
    marks = log_sizes(daemon.logs)
    return _Start(daemon, start(), marks)


def _wait_until(
    answers: Callable[[], bool], start: _Start, deadline: float, timeout: float
) -> None:
    """Wait until ``answers()``; raise with the log tail if the daemon dies or time runs out."""
    daemon = start.daemon
    while not answers():
        if start.pid is not None and not process_alive(start.pid):
            daemon.pid_file.unlink(missing_ok=True)
            tail = log_tail(daemon.logs, start.log_marks)
            raise ServiceError(f"{daemon.name} exited during start-up\n{tail}")
        if time.monotonic() >= deadline:
            raise ServiceError(
                f"{daemon.name} did not answer within {timeout:g} s "
                f"(services.start_timeout_seconds)\n{log_tail(daemon.logs, start.log_marks)}"
            )
        time.sleep(_POLL_SECONDS)


# --------------------------------------------------------------------------- public API


def up(settings: Settings, *, echo: Echo = print) -> dict[str, ServiceStatus]:
    """Start Kafka and Redis unless they answer already, wait for them, create the topics.

    Idempotent: a running daemon that answers is left alone, a stale pid file is removed, and
    a service that `up` did not start but that answers on the configured address is used.
    Raises ``ServiceError`` (with the tail of the log) when a service does not answer within
    ``settings.services.start_timeout_seconds``.
    """
    layout = RunLayout.of(settings)
    timeout = settings.services.start_timeout_seconds
    with _locked(layout.lock):
        echo(f"run folder: {layout.run_dir}")
        kafka = _start(_kafka_daemon(layout), lambda: _start_kafka(settings, layout, echo))
        redis_ = _start(
            _redis_daemon(layout, settings), lambda: _start_redis(settings, layout, echo)
        )
        deadline = time.monotonic() + timeout
        _wait_until(lambda: redis_answering(settings), redis_, deadline, timeout)
        _wait_until(lambda: kafka_answering(settings), kafka, deadline, timeout)
        echo(f"redis: answering at {redacted_redis_url(settings.redis.url)}")
        echo(f"kafka: answering at {settings.kafka.bootstrap_servers}")
        created = asyncio.run(
            ensure_topics(settings, timeout=max(deadline - time.monotonic(), 30.0))
        )
        echo(f"kafka: created topics {', '.join(created)}" if created else "kafka: topics present")
    return status(settings)


def down(settings: Settings, *, echo: Echo = print, stop_timeout: float = 30.0) -> None:
    """Stop the daemons that `up` started (by their pid files); leave data and logs.

    SIGTERM first, SIGKILL after ``stop_timeout`` seconds. A Kafka or Redis that `up` did not
    start is never touched.
    """
    layout = RunLayout.of(settings)
    with _locked(layout.lock):
        for daemon in (_kafka_daemon(layout), _redis_daemon(layout, settings)):
            pid = read_live_pid(daemon.pid_file, *daemon.markers)
            if pid is None:
                echo(f"{daemon.name}: not running (nothing started by vigil)")
                continue
            killed = _stop(pid, stop_timeout)
            daemon.pid_file.unlink(missing_ok=True)
            echo(f"{daemon.name}: stopped (pid {pid}{', SIGKILL' if killed else ''})")


def status(settings: Settings) -> dict[str, ServiceStatus]:
    """For each service: its address, the pid `up` started (or None), running, answering."""
    layout = RunLayout.of(settings)
    report: dict[str, ServiceStatus] = {}
    probes: dict[str, tuple[_Daemon, str, Callable[[], bool]]] = {
        "kafka": (
            _kafka_daemon(layout),
            settings.kafka.bootstrap_servers,
            lambda: kafka_answering(settings),
        ),
        "redis": (
            _redis_daemon(layout, settings),
            redacted_redis_url(settings.redis.url),
            lambda: redis_answering(settings),
        ),
    }
    for name, (daemon, address, answers) in probes.items():
        pid = read_live_pid(daemon.pid_file, *daemon.markers) if daemon.pid_file.exists() else None
        report[name] = ServiceStatus(
            address=address, pid=pid, running=pid is not None, answering=answers()
        )
    return report
