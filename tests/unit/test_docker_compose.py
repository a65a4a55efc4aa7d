"""docker-compose.yml, the Dockerfile, Prometheus and Grafana agree with the code.

No Docker here: the files are parsed and held against ``engine.config.Settings`` defaults, the
project metadata and, once they exist, ``engine.metrics`` and ``engine.cli``. Each test names the
drift it catches.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from engine.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCES = (
    ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
)
GRAFANA_PROVIDERS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "vigil.json"

SERVICES = ("kafka", "redis", "topics", "worker", "learner", "api", "prometheus", "grafana")
VIGIL_PROCESSES = ("worker", "learner", "api")

# The metric families the dashboard must chart (the names engine/metrics.py exports).
REQUIRED_METRICS = (
    "vigil_events_total",
    "vigil_dlq_total",
    "vigil_stage_seconds_bucket",
    "vigil_end_to_end_seconds_bucket",
    "vigil_alerts_total",
    "vigil_actions_total",
    "vigil_suppressions_total",
    "vigil_duplicates_total",
    "vigil_batch_size_bucket",
)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the code ships them: no VIGIL_* variable from the caller's shell."""
    for name in [n for n in os.environ if n.upper().startswith("VIGIL_")]:
        monkeypatch.delenv(name)
    return Settings()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def setting_env_names(model: type[BaseModel] = Settings, prefix: str = "VIGIL_") -> set[str]:
    """Every environment variable that names a setting: leaves and whole (JSON) groups."""
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        name = prefix + field_name.upper()
        names.add(name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= setting_env_names(annotation, name + "__")
    return names


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping (compose allows a list of NAME=value too)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def resolved(value: str) -> str:
    """A compose value with ``${NAME:-default}`` replaced by its default, as on a clean shell."""
    return _INTERPOLATION.sub(lambda m: m.group("default") or "", value)


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for each published port, short or long syntax."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        if len(parts) == 3:
            out.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            out.append(("", int(parts[0]), int(parts[1])))
        else:
            out.append(("", int(parts[0]), int(parts[0])))
    return out


def command_of(service: dict[str, Any], key: str = "command") -> list[str]:
    value = service.get(key) or []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(t) for t in test)


def depends(service: dict[str, Any]) -> dict[str, str]:
    dep = service.get("depends_on") or {}
    if isinstance(dep, list):
        return dict.fromkeys(dep, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in dep.items()}


def kafka_listeners(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Advertised listener name -> host:port."""
    advertised = env_of(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    return dict(item.split("://", 1) for item in advertised.split(","))


def scrape_targets() -> dict[str, tuple[str, set[str]]]:
    """Prometheus job -> (metrics path, targets)."""
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {}
    for job in config["scrape_configs"]:
        targets = {t for sc in job.get("static_configs", []) for t in sc["targets"]}
        jobs[job["job_name"]] = (job.get("metrics_path", "/metrics"), targets)
    return jobs


def dashboard_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard_panels(dashboard) for t in p.get("targets", [])]


_PROMQL_KEYWORDS = {
    "bool",
    "and",
    "or",
    "unless",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"(?:\boffset|@)\s*-?[\w.]+", " ", text)  # offset 5m, @ 1700000000
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", text)  # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        if match.group().lower() in _PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


# --------------------------------------------------------------------------- the promql helper


def test_promql_metric_names_finds_metrics_and_only_metrics() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, stage) (rate(vigil_stage_seconds_bucket"
        '{stage="rules"}[$__rate_interval]))) / on(job) group_left sum(up offset 5m) > 1e-3'
    )
    assert promql_metric_names(expr) == {"vigil_stage_seconds_bucket", "up"}


# --------------------------------------------------------------------------- services and images


def test_every_service_is_defined(services: dict[str, dict[str, Any]]) -> None:
    assert set(SERVICES) <= set(services), sorted(set(SERVICES) - set(services))


def test_images_are_kafka_4_and_redis_7(services: dict[str, dict[str, Any]]) -> None:
    kafka_image = services["kafka"]["image"]
    repo, tag = kafka_image.split(":")
    assert repo == "apache/kafka"
    assert tag.split(".")[0] == "4", "Kafka 4 (KRaft only) is what services/kafka runs too"
    # The topics job uses the very same image, so its kafka-topics.sh matches the broker.
    assert services["topics"]["image"] == kafka_image
    assert services["redis"]["image"].split(":")[0] == "redis"
    assert services["redis"]["image"].split(":")[1].split("-")[0].split(".")[0] == "7"


def test_vigil_processes_are_built_from_this_repository(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in VIGIL_PROCESSES:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context / "Dockerfile").resolve() == DOCKERFILE
    assert command_of(services["worker"])[0] == "worker"
    assert command_of(services["learner"])[0] == "learner"
    assert command_of(services["api"])[0] == "api"


def test_kafka_runs_kraft_single_node(services: dict[str, dict[str, Any]]) -> None:
    env = env_of(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert [v.split("@")[0] for v in voters] == [node_id]
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    listeners = dict(item.split("://", 1) for item in env["KAFKA_LISTENERS"].split(","))
    assert controller in listeners
    assert voters[0].split(":")[-1] == listeners[controller].split(":")[-1]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    assert set(kafka_listeners(services)) <= set(listeners)
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key


def test_kafka_creates_implicit_topics_like_the_settings(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    env = env_of(services["kafka"])
    assert int(env["KAFKA_NUM_PARTITIONS"]) == defaults.kafka.partitions
    assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == defaults.kafka.replication_factor


# --------------------------------------------------------------------------- health and order


def test_kafka_redis_and_api_have_healthchecks(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    kafka = healthcheck_text(services["kafka"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in kafka or "kafka-topics.sh" in kafka
    bootstrap = re.search(r"--bootstrap-server\s+(\S+)", kafka)
    assert bootstrap and bootstrap.group(1) in kafka_listeners(services).values()

    redis = healthcheck_text(services["redis"])
    assert "redis-cli" in redis and "ping" in redis

    api = healthcheck_text(services["api"])
    assert f"http://localhost:{defaults.api.port}/health/live" in api


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in set(SERVICES) - {"topics"}:
        assert services[name].get("healthcheck", {}).get("test"), name


def test_vigil_processes_wait_for_healthy_kafka_redis_and_the_topics(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in VIGIL_PROCESSES:
        dep = depends(services[name])
        assert dep.get("kafka") == "service_healthy", name
        assert dep.get("redis") == "service_healthy", name
        assert dep.get("topics") == "service_completed_successfully", name
    assert depends(services["topics"]).get("kafka") == "service_healthy"
    assert depends(services["grafana"]).get("prometheus") == "service_healthy"


# --------------------------------------------------------------------------- settings


def test_every_vigil_variable_in_compose_is_a_real_setting(
    services: dict[str, dict[str, Any]],
) -> None:
    valid = setting_env_names()
    assert "VIGIL_KAFKA__BOOTSTRAP_SERVERS" in valid  # the walk reaches nested groups
    assert "VIGIL_KAFKA__TOPICS__DLQ" in valid
    used = {n for s in services.values() for n in env_of(s) if n.startswith("VIGIL_")}
    used |= set(re.findall(r"\$\{(VIGIL_\w+?)(?::?-[^}]*)?\}", COMPOSE.read_text()))
    assert used, "the compose file sets no VIGIL_ variable"
    assert used <= valid, sorted(used - valid)
    # Only Vigil's own processes carry VIGIL_ settings.
    for name, service in services.items():
        if name not in VIGIL_PROCESSES:
            assert not [n for n in env_of(service) if n.startswith("VIGIL_")], name


def test_worker_and_api_share_the_vigil_environment(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    shared = {str(k): str(v) for k, v in compose["x-vigil-env"].items()}
    assert {"VIGIL_KAFKA__BOOTSTRAP_SERVERS", "VIGIL_REDIS__URL"} <= set(shared)
    for name in VIGIL_PROCESSES:
        env = env_of(services[name])
        assert {k: env.get(k) for k in shared} == shared, name


def test_the_vigil_environment_loads_into_settings(
    services: dict[str, dict[str, Any]],
    defaults: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in VIGIL_PROCESSES:
        with monkeypatch.context() as env:
            for key, value in env_of(services[name]).items():
                env.setenv(key, resolved(value))
            settings = Settings()
        # Only the addresses move to the compose network; everything else is the default.
        assert settings.kafka.model_dump(exclude={"bootstrap_servers"}) == (
            defaults.kafka.model_dump(exclude={"bootstrap_servers"})
        )
        # The worker's metrics listen beyond loopback, where Prometheus can reach them.
        assert settings.worker.model_dump(exclude={"metrics_host"}) == (
            defaults.worker.model_dump(exclude={"metrics_host"})
        )
        if name == "worker":
            assert getattr(settings.worker, "metrics_host", "0.0.0.0") in (
                "0.0.0.0",
                "::",
            )


def test_containers_reach_kafka_and_redis_on_the_compose_network(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    shared = env_of(services["worker"])
    assert shared["VIGIL_KAFKA__BOOTSTRAP_SERVERS"] in kafka_listeners(services).values()
    redis_url = urlsplit(shared["VIGIL_REDIS__URL"])
    default_url = urlsplit(defaults.redis.url)
    assert redis_url.hostname == "redis" and "redis" in services
    assert redis_url.port == default_url.port
    assert redis_url.path == default_url.path
    assert any(target == redis_url.port for _, _, target in published(services["redis"]))


def test_published_ports_match_the_defaults(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    # A `vigil` run on the host with default settings reaches the compose Kafka...
    host, port = defaults.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)
    assert f"{host}:{port}" in kafka_listeners(services).values()
    assert (host, int(port), int(port)) in published(services["kafka"])
    # ...and the compose Redis...
    url = urlsplit(defaults.redis.url)
    assert (url.hostname, url.port, url.port) in published(services["redis"])
    # ...and the API listens where the defaults say.
    api_port = defaults.api.port
    assert any(p[1:] == (api_port, api_port) for p in published(services["api"]))
    cmd = command_of(services["api"])
    assert cmd[cmd.index("--port") + 1] == str(api_port)
    # Reachable from outside its container.
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    # The worker's metrics are exposed to the compose network for Prometheus.
    expose = {str(p) for p in services["worker"].get("expose", [])}
    assert str(defaults.worker.metrics_port) in expose
    assert f"http://localhost:{defaults.worker.metrics_port}/" in healthcheck_text(
        services["worker"]
    )


def test_api_key_placeholder_is_well_formed_and_marked_not_for_production(
    services: dict[str, dict[str, Any]],
) -> None:
    raw = env_of(services["api"])["VIGIL_API__API_KEYS"]
    assert raw.startswith("${VIGIL_API__API_KEYS:-"), "the shell's value must win"
    for entry in resolved(raw).split(","):
        assert re.fullmatch(r"[\w.-]+:[\w.+-]+:[0-9a-f]{64}", entry), entry
    assert "NOT FOR PRODUCTION" in COMPOSE.read_text()
    if importlib.util.find_spec("api.auth") is not None:
        # The API itself accepts it (known scopes, hash length).
        assert importlib.import_module("api.auth").parse_api_keys(resolved(raw))


# --------------------------------------------------------------------------- topics


def compose_topic_specs(
    services: dict[str, dict[str, Any]],
) -> dict[str, tuple[int, int, dict[str, str]]]:
    """Topic -> (partitions, replication factor, configs), as the topics job creates them."""
    env = env_of(services["topics"])
    large = {"max.message.bytes": env["OUTPUT_MAX_MESSAGE_BYTES"]}
    partitions, replication = int(env["PARTITIONS"]), int(env["REPLICATION_FACTOR"])
    specs = {name: (partitions, replication, {}) for name in env["INPUT_TOPICS"].split()}
    for name in env["OUTPUT_TOPICS"].split():
        specs[name] = (partitions, replication, large)
    return specs


def test_topics_job_creates_exactly_the_configured_topics(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    env = env_of(services["topics"])
    assert tuple(env["INPUT_TOPICS"].split()) == defaults.kafka.input_topics
    assert tuple(env["OUTPUT_TOPICS"].split()) == defaults.kafka.output_topics
    assert int(env["PARTITIONS"]) == defaults.kafka.partitions
    assert int(env["REPLICATION_FACTOR"]) == defaults.kafka.replication_factor
    # A DLQ record carries the refused bytes: the output topics take the largest record the
    # worker's producer sends.
    assert int(env["OUTPUT_MAX_MESSAGE_BYTES"]) == defaults.kafka.max_request_bytes
    assert env["BOOTSTRAP"] in kafka_listeners(services).values()


def test_topics_job_script_uses_its_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    topics = services["topics"]
    # $$ is compose's escape for a literal $: the shell, not compose, expands these.
    script = " ".join(command_of(topics, "entrypoint") + command_of(topics))
    for fragment in (
        "kafka-topics.sh",
        "--create",
        "--if-not-exists",
        "max.message.bytes",
    ):
        assert fragment in script, fragment
    for name in env_of(topics):
        assert f"$${name}" in script, name
    assert topics.get("restart", "no") == "no"


def test_topics_job_matches_vigil_services_topics(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    """The compose stack and `vigil services up` create the same topics the same way."""
    topic_specs = importlib.import_module("services.topics").topic_specs
    local = {
        spec.name: (
            spec.num_partitions,
            spec.replication_factor,
            dict(spec.topic_configs or {}),
        )
        for spec in topic_specs(defaults)
    }
    assert compose_topic_specs(services) == local


# --------------------------------------------------------------------------- prometheus


def test_prometheus_scrapes_the_worker_the_learner_and_the_api(defaults: Settings) -> None:
    targets = {t: path for path, ts in scrape_targets().values() for t in ts}
    assert targets.get(f"worker:{defaults.worker.metrics_port}") == "/metrics"
    assert targets.get(f"learner:{defaults.models.learner_metrics_port}") == "/metrics"
    assert targets.get(f"api:{defaults.api.port}") == "/metrics"


def test_prometheus_targets_are_compose_services(
    services: dict[str, dict[str, Any]],
) -> None:
    for _, targets in scrape_targets().values():
        for target in targets:
            host = target.rsplit(":", 1)[0]
            assert host == "localhost" or host in services, target


def test_prometheus_mounts_its_config(services: dict[str, dict[str, Any]]) -> None:
    volumes = [str(v) for v in services["prometheus"]["volumes"]]
    mount = next(v for v in volumes if v.split(":")[1] == "/etc/prometheus/prometheus.yml")
    assert (ROOT / mount.split(":")[0]).resolve() == PROMETHEUS


# --------------------------------------------------------------------------- grafana


def _grafana_mounts(services: dict[str, dict[str, Any]]) -> dict[str, Path]:
    mounts = {}
    for volume in services["grafana"]["volumes"]:
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def test_grafana_is_provisioned_from_deploy(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = _grafana_mounts(services)
    assert mounts["/etc/grafana/provisioning/datasources"] == GRAFANA_DATASOURCES.parent
    assert mounts["/etc/grafana/provisioning/dashboards"] == GRAFANA_PROVIDERS.parent
    providers = yaml.safe_load(GRAFANA_PROVIDERS.read_text())["providers"]
    paths = {p["options"]["path"] for p in providers}
    assert any(mounts.get(path) == DASHBOARD.parent for path in paths), paths
    env = env_of(services["grafana"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_grafana_datasource_is_the_compose_prometheus(
    services: dict[str, dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    (datasource,) = yaml.safe_load(GRAFANA_DATASOURCES.read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus"
    assert any(target == url.port for _, _, target in published(services["prometheus"]))
    # Every panel queries that datasource: directly by uid, or through the $datasource variable
    # whose default is that uid.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for panel in dashboard_panels(dashboard):
        for ref in [panel.get("datasource")] + [
            t.get("datasource") for t in panel.get("targets", [])
        ]:
            if ref is None or panel["type"] == "row":
                continue
            uid = ref["uid"]
            if uid.startswith("${"):
                uid = variables[uid[2:-1]]["current"]["value"]
            assert uid == datasource["uid"], panel["title"]


def test_dashboard_is_importable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard_panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["refId"] and target["expr"].strip(), panel["title"]


def test_dashboard_queries_only_vigil_metrics(dashboard: dict[str, Any]) -> None:
    exprs = dashboard_exprs(dashboard)
    assert exprs
    for expr in exprs:
        names = promql_metric_names(expr)
        assert names, expr
        assert all(n.startswith("vigil_") for n in names), (expr, names)


def test_dashboard_charts_every_metric_family(dashboard: dict[str, Any]) -> None:
    queried = {n for e in dashboard_exprs(dashboard) for n in promql_metric_names(e)}
    missing = set(REQUIRED_METRICS) - queried
    assert not missing, sorted(missing)


def test_dashboard_quantiles_keep_the_le_label(dashboard: dict[str, Any]) -> None:
    quantiles = [e for e in dashboard_exprs(dashboard) if "histogram_quantile" in e]
    assert quantiles
    for expr in quantiles:
        by = re.search(r"histogram_quantile\(\s*[\d.]+\s*,\s*sum by \(([^)]*)\)", expr)
        assert by, expr
        assert "le" in {label.strip() for label in by.group(1).split(",")}, expr
        assert all(n.endswith("_bucket") for n in promql_metric_names(expr)), expr


def _prometheus_sample_names(metric_type: str, name: str) -> tuple[str, ...]:
    """The sample names of a metric family, the one a dashboard queries first."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }.get(metric_type, ("",))
    return tuple(name + s for s in suffixes)


@pytest.fixture(scope="module")
def engine_metrics() -> dict[str, tuple[str, ...]]:
    """Metric family -> its sample names, for every vigil_* metric engine.metrics defines."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.metrics import MetricWrapperBase

    module = importlib.import_module("engine.metrics")
    # Every process's metrics: the worker's, the API's and the learner's, wherever defined.
    for other in ("api.metrics", "online_models.metrics"):
        if importlib.util.find_spec(other) is not None:
            importlib.import_module(other)
    families = []
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            families += value.describe()
        elif isinstance(value, CollectorRegistry):
            families += list(value.collect())
    families += list(REGISTRY.collect())
    defined = {
        family.name: _prometheus_sample_names(family.type, family.name)
        for family in families
        if family.name.startswith("vigil_")
    }
    assert defined, "engine.metrics defines no vigil_* metric at import time"
    return defined


def test_dashboard_charts_only_metrics_engine_metrics_defines(
    dashboard: dict[str, Any], engine_metrics: dict[str, tuple[str, ...]]
) -> None:
    defined = {n for samples in engine_metrics.values() for n in samples}
    queried = {n for e in dashboard_exprs(dashboard) for n in promql_metric_names(e)}
    assert queried <= defined, sorted(queried - defined)


def test_dashboard_charts_every_metric_engine_metrics_defines(
    dashboard: dict[str, Any], engine_metrics: dict[str, tuple[str, ...]]
) -> None:
    queried = {n for e in dashboard_exprs(dashboard) for n in promql_metric_names(e)}
    # Named as a query would: vigil_x_total for a counter, vigil_x_bucket for a histogram.
    uncharted = [s[0] for s in engine_metrics.values() if not set(s) & queried]
    assert not uncharted, f"add a panel to {DASHBOARD.name} for {sorted(uncharted)}"


# --------------------------------------------------------------------------- the image


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_builds_from_the_lock_file() -> None:
    instructions = _instructions()
    runs = [rest for kw, rest in instructions if kw == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs and all("--frozen" in r and "--no-dev" in r for r in syncs)
    copies = [rest for kw, rest in instructions if kw == "COPY"]
    # The lock file is copied, and dependencies installed, before the source: layer caching.
    first = copies[0].split()
    assert "pyproject.toml" in first and "uv.lock" in first
    order = [(kw, rest) for kw, rest in instructions if kw in ("COPY", "RUN")]
    first_sync = next(i for i, (kw, r) in enumerate(order) if kw == "RUN" and "uv sync" in r)
    source_copy = next(i for i, (kw, r) in enumerate(order) if kw == "COPY" and r.startswith(". "))
    assert first_sync < source_copy


def test_dockerfile_python_matches_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (base,) = [rest for kw, rest in _instructions() if kw == "FROM"]
    match = re.fullmatch(r"python:(\d+\.\d+)-slim(?:\s+AS\s+\w+)?", base, re.IGNORECASE)
    assert match, base
    minor = match.group(1)
    assert f">={minor}" in project["requires-python"].replace(" ", "")


def test_dockerfile_runs_vigil_as_non_root() -> None:
    instructions = _instructions()
    users = [rest for kw, rest in instructions if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entrypoint = next(rest for kw, rest in reversed(instructions) if kw == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["vigil"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "vigil" in project["scripts"]
    env = " ".join(rest for kw, rest in instructions if kw == "ENV")
    assert "/app/.venv/bin" in env  # where uv puts the console script
    # The user is switched after every build step, so nothing runs as root at run time.
    last_user = max(i for i, (kw, _) in enumerate(instructions) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in instructions[last_user:])


def test_dockerignore_keeps_local_state_out_and_the_build_inputs_in() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".venv" in patterns and ".git" in patterns
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    needed = [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        *wheel["targets"]["wheel"]["packages"],
    ]
    for path in needed:
        assert not any(fnmatch(path, p) for p in patterns if not p.startswith("!")), path


# --------------------------------------------------------------------------- the command line


def _cli_help(*args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from engine.cli import main; "
        f"sys.argv = ['vigil', *{list(args)!r}, '--help']; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_compose_commands_exist_in_the_cli(services: dict[str, dict[str, Any]]) -> None:
    """`vigil worker` and `vigil api --host --port` (the compose commands) must parse."""
    worker = _cli_help(*command_of(services["worker"])[:1])
    assert worker.returncode == 0, worker.stderr
    api = _cli_help(*command_of(services["api"])[:1])
    assert api.returncode == 0, api.stderr
    for flag in [a for a in command_of(services["api"]) if a.startswith("--")]:
        assert flag in api.stdout, flag
