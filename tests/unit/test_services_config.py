"""The pure parts of `vigil services`: rendered configs, addresses, pid files, topic specs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from engine.config import KafkaSettings, RedisSettings, ServiceSettings, Settings
from services import local
from services.topics import topic_specs


def make_settings(
    tmp_path: Path,
    *,
    bootstrap: str = "127.0.0.1:19092",
    redis_url: str = "redis://127.0.0.1:16379/0",
    password: str | None = None,
    partitions: int = 3,
    topic_prefix: str = "",
    heap: str = "256m",
) -> Settings:
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, partitions=partitions, topic_prefix=topic_prefix
        ),
        redis=RedisSettings(url=redis_url, password=SecretStr(password) if password else None),
        services=ServiceSettings(
            run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", kafka_heap=heap
        ),
    )


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


# --------------------------------------------------------------------------- Kafka


def test_server_properties_bind_loopback_on_the_configured_ports(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    props = properties(local.render_server_properties(settings, local.RunLayout.of(settings)))

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in props  # incompatible with `format --standalone`
    assert props["process.roles"] == "broker,controller"


def test_server_properties_keep_data_under_the_run_folder(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, partitions=4)
    props = properties(local.render_server_properties(settings, local.RunLayout.of(settings)))

    assert props["log.dirs"] == str((tmp_path / "run" / "kafka" / "data").resolve())
    assert props["num.partitions"] == "4"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_server_properties_have_no_unrendered_placeholder(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    text = local.render_server_properties(settings, local.RunLayout.of(settings))

    assert not re.search(r"\$\{?\w", text)
    assert "0.0.0.0" not in text


def test_localhost_binds_ipv4_loopback(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, bootstrap="localhost:9092")
    props = properties(local.render_server_properties(settings, local.RunLayout.of(settings)))

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"


@pytest.mark.parametrize("bootstrap", ["10.1.2.3:9092", "kafka.example:9092", "0.0.0.0:9092"])
def test_a_non_loopback_broker_is_never_started(tmp_path: Path, bootstrap: str) -> None:
    settings = make_settings(tmp_path, bootstrap=bootstrap)

    with pytest.raises(local.ServiceError, match="loopback only"):
        local.render_server_properties(settings, local.RunLayout.of(settings))


@pytest.mark.parametrize("bootstrap", ["127.0.0.1:9092,127.0.0.1:9094", "127.0.0.1", ":9092"])
def test_the_local_broker_needs_one_host_and_port(tmp_path: Path, bootstrap: str) -> None:
    with pytest.raises(local.ServiceError):
        local.kafka_endpoint(make_settings(tmp_path, bootstrap=bootstrap))


def test_the_controller_listens_one_port_above_the_broker(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, bootstrap="127.0.0.1:29092")

    assert local.kafka_controller_endpoint(settings) == local.Endpoint("127.0.0.1", 29093)


def test_kafka_command_sets_heap_logging_and_classpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    settings = make_settings(tmp_path, heap="512m")
    layout = local.RunLayout.of(settings)

    command = local.kafka_command(settings, tmp_path / "jars", layout)

    assert command[0] == "/usr/bin/java"
    assert {"-Xms512m", "-Xmx512m"} <= set(command)
    assert f"-Dkafka.logs.dir={layout.kafka_logs}" in command
    assert f"-Dlog4j2.configurationFile={local.KAFKA_LOG4J}" in command
    assert local.KAFKA_LOG4J.is_file()
    assert command[-3:] == [f"{tmp_path / 'jars'}/*", "kafka.Kafka", str(layout.kafka_config)]


@pytest.mark.parametrize("heap", ["", "lots", "1 g", "-1g", "0m"])
def test_a_malformed_heap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, heap: str
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    settings = make_settings(tmp_path, heap=heap)

    with pytest.raises(local.ServiceError, match="kafka_heap"):
        local.kafka_command(settings, tmp_path, local.RunLayout.of(settings))


def test_kafka_version_is_read_from_the_pom() -> None:
    assert local.kafka_version() == "4.1.1"


def test_kafka_version_accepts_a_literal_version(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><dependencies><dependency>'
        "<groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>"
        "<version>9.9.9</version></dependency></dependencies></project>"
    )

    assert local.kafka_version(pom) == "9.9.9"


def test_cluster_ids_are_22_base64url_characters() -> None:
    ids = {local.new_cluster_id() for _ in range(200)}

    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)


# --------------------------------------------------------------------------- Redis


def test_redis_conf_binds_loopback_on_the_configured_port(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url="redis://localhost:16400/2")
    layout = local.RunLayout.of(settings)
    conf = local.render_redis_conf(settings, layout).splitlines()

    assert "bind 127.0.0.1" in conf
    assert "port 16400" in conf
    assert "protected-mode yes" in conf
    assert "daemonize no" in conf
    assert f'dir "{layout.redis_data}"' in conf
    assert not any(line.startswith("requirepass") for line in conf)


def test_redis_conf_requires_the_configured_password_quoted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, password='se cret"\\')
    conf = local.render_redis_conf(settings, local.RunLayout.of(settings)).splitlines()

    assert 'requirepass "se cret\\"\\\\"' in conf


def test_a_password_in_the_url_is_used_when_none_is_set(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url="redis://:hunter2@127.0.0.1:16379/0")

    assert local.redis_password(settings) == "hunter2"
    assert local.redis_endpoint(settings) == local.Endpoint("127.0.0.1", 16379)


def test_the_password_setting_wins_over_the_url(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url="redis://:old@127.0.0.1:16379/0", password="new")

    assert local.redis_password(settings) == "new"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://app:hunter2@127.0.0.1:6379/0", "redis://app:***@127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_printed_redis_urls_hide_the_password(url: str, shown: str) -> None:
    assert local.redacted_redis_url(url) == shown


@pytest.mark.parametrize("url", ["rediss://127.0.0.1:6379/0", "unix:///tmp/redis.sock"])
def test_the_local_redis_speaks_plain_redis(tmp_path: Path, url: str) -> None:
    with pytest.raises(local.ServiceError):
        local.redis_endpoint(make_settings(tmp_path, redis_url=url))


def test_a_non_loopback_redis_is_never_started(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redis_url="redis://192.168.1.5:6379/0")

    with pytest.raises(local.ServiceError, match="loopback only"):
        local.render_redis_conf(settings, local.RunLayout.of(settings))


# --------------------------------------------------------------------------- run folder


def test_everything_lives_under_the_run_folder(tmp_path: Path) -> None:
    layout = local.RunLayout.of(make_settings(tmp_path))
    run = (tmp_path / "run").resolve()

    assert layout.kafka_config == run / "kafka" / "server.properties"
    assert layout.kafka_pid == run / "kafka" / "kafka.pid"
    assert layout.redis_config == run / "redis" / "redis.conf"
    assert layout.redis_pid == run / "redis" / "redis.pid"
    assert all(p.is_relative_to(run) for p in (layout.kafka_data, layout.redis_data, layout.lock))


def test_a_pid_file_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{dead.pid}\n")

    assert local.read_live_pid(pid_file, "python") is None
    assert not pid_file.exists()


def test_a_garbled_pid_file_is_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("not a pid")

    assert local.read_live_pid(pid_file, "anything") is None
    assert not pid_file.exists()


def test_a_live_pid_counts_only_when_it_runs_our_program(tmp_path: Path) -> None:
    program = "import time; print('ready', flush=True); time.sleep(30)"
    with subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"  # exec'd: /proc shows its cmdline
            pid_file = tmp_path / "x.pid"
            pid_file.write_text(f"{child.pid}\n")
            assert local.read_live_pid(pid_file, "time.sleep(30)", "import") == child.pid
            assert pid_file.exists()

            assert local.read_live_pid(pid_file, "kafka.Kafka /elsewhere") is None
            assert not pid_file.exists()  # a reused pid is not ours: never signalled
        finally:
            child.kill()


def test_log_tail_shows_only_what_the_new_run_wrote(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("old run\n")
    marks = local.log_sizes((log, tmp_path / "absent.log"))
    with log.open("a") as handle:
        handle.write("new line 1\nnew line 2\n")

    tail = local.log_tail((log, tmp_path / "absent.log"), marks)

    assert "new line 2" in tail
    assert "old run" not in tail


# --------------------------------------------------------------------------- topics


def test_every_input_and_output_topic_is_specified(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, partitions=5, topic_prefix="t.")
    specs = {s.name: s for s in topic_specs(settings)}

    assert set(specs) == {*settings.kafka.input_topics, *settings.kafka.output_topics}
    assert "t.events.dlq" in specs
    assert {s.num_partitions for s in specs.values()} == {5}
    assert {s.replication_factor for s in specs.values()} == {1}


def test_dlq_and_outputs_accept_the_largest_record(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    specs = {s.name: s for s in topic_specs(settings)}
    limit = {"max.message.bytes": str(settings.kafka.max_request_bytes)}

    assert specs[settings.kafka.topic("dlq")].topic_configs == limit
    assert all(specs[name].topic_configs == limit for name in settings.kafka.output_topics)
    assert all(specs[name].topic_configs == {} for name in settings.kafka.input_topics)
