"""Schemathesis against the running API's OpenAPI document, with a valid key: generated valid
and invalid requests to every operation find no server error, and every answer matches the
documented status codes and response schemas. Bounded: a few dozen examples per operation.

The endless SSE stream is left out (a stream has no end to validate); tests/unit/test_api_app.py
covers its bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.auth import hash_key
from engine.config import Settings
from tests.integration.harness import ROOT, create_topics

pytestmark = pytest.mark.integration
KEY = "fuzz-key"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api_url(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    unique = os.urandom(5).hex()
    base = Settings().model_dump()
    base["kafka"]["topic_prefix"] = f"fz{unique}."
    base["redis"]["key_prefix"] = f"fz{unique}"
    settings = Settings.model_validate(base)
    import asyncio

    asyncio.run(create_topics(settings))
    port = _free_port()
    env = {
        **os.environ,
        "VIGIL_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "VIGIL_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "VIGIL_API__API_KEYS": f"fuzz:read+subscribe+admin:{hash_key(KEY)}",
        "VIGIL_LOG_LEVEL": "WARNING",
    }
    log = tmp_path_factory.mktemp("api") / "api.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"fz{unique}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-4000:]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the API exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the API was not ready within 60s: {log.read_text(errors='replace')[-3000:]}")


@pytest.mark.parametrize(
    ("mode", "examples"),
    [(schemathesis.GenerationMode.POSITIVE, 25), (schemathesis.GenerationMode.NEGATIVE, 25)],
)
def test_no_server_error_and_answers_match_the_document(
    api_url: str, mode: schemathesis.GenerationMode, examples: int
) -> None:
    schema = schemathesis.openapi.from_url(api_url + "/openapi.json").exclude(path="/alerts/stream")
    auth = {"Authorization": f"Bearer {KEY}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode, headers=auth))
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(base_url=api_url, headers=auth, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            assert mode == schemathesis.GenerationMode.NEGATIVE  # nothing to make invalid
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}"[:3000])
    assert operations >= 14
    assert not failures, "\n\n".join(failures)


def test_the_document_is_complete(api_url: str) -> None:
    doc = httpx.get(api_url + "/openapi.json", timeout=5).json()
    ops = [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]
    assert len(ops) >= 14
    for method, path, op in ops:
        assert op.get("summary"), f"{method} {path} has no summary"
        for code, answer in op["responses"].items():
            assert answer.get("description"), f"{method} {path} {code}"
