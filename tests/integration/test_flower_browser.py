"""Flower in a real browser: `runq flower` with basic auth shows a job's tasks by job id.

Headless Chromium from Debian's `chromium` / `chromium-driver` packages, driven by
Selenium (a test tool's own browser download does not work here). The basic-auth header
is set through the DevTools protocol, so the page's own XHR calls carry it too. The
test takes a screenshot of the filtered tasks page; `RUNQ_UPDATE_SCREENSHOTS=1` saves it
as `docs/img/flower-tasks.png` (a plain run leaves the working tree as it found it).

A missing browser fails this test (with the command that installs it), never skips it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runq.config.settings import load_settings
from runq.producers.client.sync import Client
from runq.worker.launcher import Stack, free_port
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver (and pip install selenium)"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "flower-tasks.png"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,900",
]  # fmt: skip


def _require_browser() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        where = "under CI (RUNQ_CI is set)" if os.environ.get("RUNQ_CI") else "here"
        pytest.fail(f"{', '.join(missing)} missing {where}: {INSTALL}")


def _get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=3) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("flower")
    with Stack(home=home, sandbox_latency_ms=100, worker_log=home / "worker.log",
               worker_env={"RUNQ_LOG_FORMAT": "json"}) as running:  # fmt: skip
        yield running


@pytest.fixture(scope="module")
def flower(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`runq flower` as a process, credentials from RUNQ_FLOWER_BASIC_AUTH."""
    auth = f"ops:{secrets.token_urlsafe(12)}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("flower-log") / "flower.log").open("wb")
    env = {**os.environ, "REDIS_URL": str(stack.redis_url), "RUNQ_FLOWER_BASIC_AUTH": auth}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runq.producers.cli", "flower", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip

    def healthy() -> bool:
        assert proc.poll() is None, f"runq flower exited with {proc.returncode}"
        try:
            return _get(base + "/healthcheck")[0] == 200
        except OSError:
            return False

    try:
        wait_for(healthy, timeout=30, what="Flower to answer /healthcheck")
        yield {"base": base, "auth": auth}
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_flower_refuses_requests_without_the_credentials(flower: dict[str, str]) -> None:
    assert _get(flower["base"] + "/tasks")[0] == 401
    assert _get(flower["base"] + "/tasks", auth="ops:wrong-password")[0] == 401
    assert _get(flower["base"] + "/tasks", auth=flower["auth"])[0] == 200


def test_flower_refuses_to_start_without_auth() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RUNQ_FLOWER_BASIC_AUTH"}
    out = subprocess.run(
        [sys.executable, "-m", "runq.producers.cli", "flower", "--port", str(free_port())],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "RUNQ_FLOWER_BASIC_AUTH" in out.stderr and "--demo" in out.stderr


def _job_tasks(flower: dict[str, str], job_id: str) -> dict[str, dict[str, Any]]:
    """Flower's API: the tasks it saw for this job, by name."""
    status, body = _get(flower["base"] + "/api/tasks?limit=1000", auth=flower["auth"])
    assert status == 200
    return {t["name"]: t for t in json.loads(body).values() if job_id in str(t.get("args"))}


def test_a_jobs_tasks_in_the_flower_tasks_page(
    stack: Stack, flower: dict[str, str], tmp_path: Path
) -> None:
    _require_browser()
    update_docs = os.environ.get("RUNQ_UPDATE_SCREENSHOTS") == "1"
    screenshot = DOCS_SCREENSHOT if update_docs else tmp_path / "flower-tasks.png"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert stack.redis_url
    client = Client(stack.redis_url, load_settings(redis_url=stack.redis_url))
    # A job with one tool round (the sandbox's script channel): every kind of runq task.
    script = json.dumps([[{"name": "calculator", "arguments": {"expression": "6*7"}}]])
    handle = client.submit("Which tasks did this job run?", tools=["calculator"],
                           instructions=f"sandbox_script: {script}")  # fmt: skip
    assert handle.result(timeout=60)["status"] == "succeeded"
    # The tool call that completes the round submits the outputs itself: no task of its own.
    names = {"runq.jobs.start", "runq.jobs.poll", "runq.tools.call"}
    tasks = wait_for(lambda: (t := _job_tasks(flower, handle.id)) and names <= set(t) and t,
                     timeout=20, what="Flower to receive the job's task events")  # fmt: skip
    assert tasks["runq.jobs.start"]["state"] == "SUCCESS"
    # The task events say which queue carried each step: tool calls go on `tools`.
    assert tasks["runq.tools.call"]["routing_key"] == "tools"
    assert tasks["runq.jobs.poll"]["routing_key"] == "runs"

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="runq-chromium-")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        token = base64.b64encode(flower["auth"].encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
        )
        driver.get(flower["base"] + "/tasks")
        wait = WebDriverWait(driver, 20)
        search = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=search]"))
        search.send_keys(f"args:{handle.id}")

        def rows_of_the_job(d: Any) -> list[str] | bool:
            rows = d.execute_script(  # one atomic read: the table redraws under us
                "return Array.from(document.querySelectorAll('#tasks-table tbody tr'))"
                ".map(r => r.innerText)"
            )
            shown = [r for r in rows if handle.id in r]
            return shown if len(shown) == len(rows) and names <= set(" ".join(shown).split()) \
                else False  # fmt: skip

        rows = wait.until(rows_of_the_job)
        assert "Flower" in driver.title
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    text = " ".join(rows)
    assert all(name in text for name in names)
    assert text.count("SUCCESS") == len(rows) >= len(names)
    assert screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
