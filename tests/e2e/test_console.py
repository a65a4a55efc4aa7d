"""The live console in headless Chromium (Debian's), against a running API process fed by the
real worker: an alert published through Kafka appears on the page, and clicking it shows the
decision's explanation and the customer's 360 view.

Needs /usr/bin/chromium (scripts/install_browser.sh installs it); fails, never skips, without it.
The screenshot is kept next to the test's logs (its path is printed).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from api.auth import hash_key
from api.testing import churn_story
from engine.config import Settings
from tests.integration.harness import (
    ROOT,
    WorkerProcess,
    create_topics,
    event_bytes,
    produce,
    topic_role,
)

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
KEY = "console-key"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def e2e_settings(
    unique: str, kafka_bootstrap: str, redis_url: str, settings_for: Callable[..., Settings]
) -> Iterator[Settings]:
    settings = settings_for(
        kafka={"topic_prefix": f"e2e{unique}.", "consumer_group": f"vigil-e2e-{unique}"},
        redis={"key_prefix": f"e2e{unique}"},
        worker={"metrics_port": 0, "batch_max": 50},
    )
    asyncio.run(create_topics(settings))
    yield settings
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"e2e{unique}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


class ApiProcess(WorkerProcess):
    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        super().__init__(env, log)
        self.port = port

    def start(self) -> ApiProcess:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.cli",
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        return self


def _wait_ready(url: str, api: ApiProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert api.alive(), f"the API exited:\n{api.log_tail()}"
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"the API was not ready within {timeout}s:\n{api.log_tail()}")


def test_an_alert_appears_live_and_opens_its_explanation(
    e2e_settings: Settings,
    env_for_settings: Callable[[Settings], dict[str, str]],
    tmp_path: Path,
    cleanup: list[Callable[[], None]],
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_browser.sh (as root)")
    env = env_for_settings(e2e_settings)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    cleanup.append(worker.kill)
    port = _free_port()
    api_env = {**env, "VIGIL_API__API_KEYS": f"console:read:{hash_key(KEY)}"}
    api = ApiProcess(api_env, tmp_path / "api.log", port).start()
    cleanup.append(api.stop)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, api)

    cid = "e2e-customer-1"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            _drive(context, url, cid, e2e_settings, tmp_path, worker, api)
        finally:
            context.close()
    assert worker.alive(), worker.log_tail()


def _drive(
    context: BrowserContext,
    url: str,
    cid: str,
    settings: Settings,
    tmp_path: Path,
    worker: WorkerProcess,
    api: ApiProcess,
) -> None:
    page = context.new_page()
    page.goto(url + "/console")
    page.fill("#key", KEY)
    page.click("#connect")
    expect(page.locator("#status")).to_have_text("live", timeout=10_000)

    # The worker decides the story; its alerts reach the page through Kafka and the API.
    story = churn_story(cid)
    records = [(topic_role(e), cid.encode(), event_bytes(e)) for e in story]
    # Playwright's sync API owns this thread's event loop: produce from another thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, produce(settings, records)).result(30)
    row = page.locator(f'tr.alert-row[data-customer-id="{cid}"]').first
    try:
        expect(row).to_be_visible(timeout=45_000)
    except AssertionError:
        raise AssertionError(
            f"no alert on the page.\nworker:\n{worker.log_tail()}\napi:\n{api.log_tail()}"
        ) from None
    assert cid in row.inner_text()
    decision_id = row.get_attribute("data-decision-id")

    row.click()
    expect(page.locator("#decision-id")).to_have_text(str(decision_id), timeout=10_000)
    _expect_details(page, cid)
    shot = tmp_path / "console.png"
    page.screenshot(path=str(shot), full_page=True)
    keep = os.environ.get("VIGIL_E2E_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
    print(f"console screenshot: {shot}")


def _expect_details(page: Page, cid: str) -> None:
    expect(page.locator("#customer-id")).to_have_text(cid, timeout=10_000)
    explanation = page.locator("#explanation li")
    expect(explanation.first).to_be_visible()
    expect(page.locator("#explanation")).to_contain_text("fired:")
    expect(page.locator("#customer-policy")).to_contain_text("contacts")
    expect(page.locator("#detail-error")).to_be_hidden()
