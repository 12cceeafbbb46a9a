"""The gateway's web page in headless Chromium (Debian's chromium + chromedriver, Selenium).

The page must show the answer coming in: at least two distinct partial states (from the
job's events) or a `text.delta` before the final answer. Under CI (`RUNQ_CI`) a missing
Chromium fails the test, in CI and elsewhere, with the command that installs it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runq.worker.launcher import SandboxProcess, Stack
from tests.conftest import wait_for
from tests.integration.conftest import TOOL_MODULES, stack_on
from tests.integration.gateway_process import start_gateway, stop

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")  # fmt: skip


@pytest.fixture(scope="module")
def refunds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the `refund` tool (tests/integration/approval_tools.py) leaves its markers."""
    return tmp_path_factory.mktemp("refunds")


@pytest.fixture(scope="module")
def stack(
    redis_url: str, sandbox: SandboxProcess, refunds: Path, tmp_path_factory
) -> Iterator[Stack]:
    """The usual workers, with the `refund` tool whose calls a person approves."""
    env = {"RUNQ_TOOL_MODULES": TOOL_MODULES + ",tests.integration.approval_tools",
           "RUNQ_TEST_REFUND_DIR": str(refunds)}  # fmt: skip
    with stack_on(redis_url, sandbox, tmp_path_factory.mktemp("browser"), env=env) as running:
        yield running


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if not missing:
        return
    message = f"missing {', '.join(missing)}: apt-get install -y chromium chromium-driver"
    pytest.fail(message)  # a skipped browser test proves nothing, in CI or elsewhere


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chrome-profile"
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_streams_an_answer(stack: Stack, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    proc, base = start_gateway(str(stack.redis_url), tmp_path, "--demo")
    try:
        browser.get(base + "/")
        assert browser.find_element(By.ID, "token").get_attribute("value") == "demo"
        assert "http" not in " ".join(
            (e.get_attribute("src") or "") + (e.get_attribute("href") or "")
            for e in browser.find_elements(By.CSS_SELECTOR, "script, link, img")
        ), "the page must not load external assets"
        browser.find_element(By.ID, "question").send_keys("Please echo this question back")
        browser.find_element(By.ID, "send").click()

        def final_state() -> str | None:
            state = browser.find_element(By.ID, "status").get_attribute("data-state")
            return state if state in ("succeeded", "failed", "cancelled") else None

        assert wait_for(final_state, timeout=60, what="the final answer") == "succeeded"
        answer = browser.find_element(By.ID, "answer").text
        assert "echo this question back" in answer.lower()
        states = browser.execute_script("return window.runqStates")
    finally:
        stop(proc)
    before_final = [s for s in states if s["type"] not in ("submit", "job.final")]
    deltas = [s for s in before_final if s["type"] == "text.delta"]
    distinct = {(s["status"], s["answer"]) for s in before_final}
    assert deltas or len(distinct) >= 2, f"the page did not update before the final: {states}"
    if deltas:
        partial = [s["answer"] for s in deltas]
        assert partial[0] != partial[-1] and answer.startswith(partial[0])
    assert states[-1]["type"] == "job.final"


def test_page_shows_a_pending_approval_with_approve_and_deny(
    stack: Stack, browser: Any, refunds: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    proc, base = start_gateway(str(stack.redis_url), tmp_path, "--demo")

    def ask(question: str) -> Any:
        browser.find_element(By.ID, "question").clear()
        browser.find_element(By.ID, "question").send_keys(question)
        browser.find_element(By.ID, "send").click()
        return wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".approval"),
                        timeout=60, what="the pending approval")[0]  # fmt: skip

    def final_answer() -> str:
        state = lambda: browser.find_element(By.ID, "status").get_attribute("data-state")  # noqa: E731
        assert wait_for(lambda: state() in ("succeeded", "failed") and state(), timeout=60,
                        what="the final answer") == "succeeded"  # fmt: skip
        return str(browser.find_element(By.ID, "answer").text)

    try:
        browser.get(base + "/")
        browser.find_element(By.ID, "tools").send_keys("refund")
        box = ask("Please refund order 4711.")
        assert box.get_attribute("data-state") == "pending"
        shown = box.find_element(By.TAG_NAME, "code").text
        assert shown.startswith("refund(") and "4711" in shown
        order = json.loads(shown.removeprefix("refund(").removesuffix(")"))["order_id"]
        marker = refunds / f"refund-{order}"
        assert not marker.exists(), "the refund ran before anyone approved"
        box.find_element(By.CLASS_NAME, "approve").click()
        wait_for(lambda: box.get_attribute("data-state") == "approved", timeout=10,
                 what="the approval shown as approved")  # fmt: skip
        final_answer()
        assert marker.exists(), f"the approved refund did not run: {shown}"

        box = ask("Please refund order 4712.")
        box.find_element(By.CLASS_NAME, "reason").send_keys("not this one")
        box.find_element(By.CLASS_NAME, "deny").click()
        wait_for(lambda: box.get_attribute("data-state") == "denied", timeout=10,
                 what="the approval shown as denied")  # fmt: skip
        assert "denied by a person: not this one" in final_answer()
        assert len(list(refunds.iterdir())) == 1, "a denied refund ran"
    finally:
        stop(proc)
