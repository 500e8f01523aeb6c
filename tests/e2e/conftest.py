"""End-to-end fixtures: a real daphne server on its own engine root, and Debian's Chromium via Playwright.

These tests never use pytest-django's test database: the server is a separate process with its own
BERTH_ROOT (and so its own SQLite file), prepared with `manage.py migrate` plus three users, one per
role. Everything the session creates (directories, the server process) is removed at the end; only
the server's PID is ever signalled.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TMP_PREFIX, net_tag, require, unmount_under
from tests.polling import wait_until

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# One user per role; `manage.py setup` will create the groups, this script stands in for it until then.
_CREATE_USERS = """
import os
import django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from dashboard import policy
policy.ensure_groups()
User = get_user_model()
password = os.environ["BERTH_E2E_PASSWORD"]
for name, group in (("operator", "operators"), ("viewer", "viewers")):
    user = User.objects.create_user(name, password=password)
    user.groups.add(Group.objects.get(name=group))
"""


@dataclass(frozen=True)
class Server:
    """A running dashboard: its base URL (no trailing slash), engine dirs and the users' password."""

    url: str
    root: Path
    run: Path
    password: str
    log: Path
    env: dict[str, str]

    def berth(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the CLI against this server's engine: same root, database and network tag."""
        return subprocess.run(
            [sys.executable, "manage.py", "berth", *args],
            cwd=REPO,
            env={**self.env, "BERTH_MONITOR": "0"},
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(
                f"daphne exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}"
            )
        with urllib.request.urlopen(url + "/login/", timeout=2) as response:
            return bool(response.status == 200)

    try:
        wait_until(
            answers,
            timeout=timeout,
            interval=0.2,
            what=f"daphne to answer at {url}/login/",
            ignoring=(urllib.error.URLError, ConnectionError, TimeoutError),
        )
    except AssertionError as exc:
        raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')[-4000:]}") from None


@pytest.fixture(scope="session")
def berth_server() -> Iterator[Server]:
    """Start `daphne` on a free loopback port with a fresh engine root; yield it; stop and clean up."""
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed")
    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "e2e-", dir="/tmp"))
    run = Path(
        tempfile.mkdtemp(prefix=TMP_PREFIX + "e2e-", dir="/run" if os.access("/run", os.W_OK) else "/tmp")
    )
    password = secrets.token_urlsafe(18)
    log = root / "daphne.log"
    env = {
        **os.environ,
        "BERTH_ROOT": str(root),
        "BERTH_RUN": str(run),
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "BERTH_E2E_PASSWORD": password,
        "PYTHONUNBUFFERED": "1",
        "BERTH_ADMIN_PASSWORD": password,
        "BERTH_MONITOR": "1",  # the server follows engine events so pages update live
        "BERTH_NET_TAG": net_tag(),  # its own bridges and nft table, apart from any other engine
    }
    env.pop("DATABASE_URL", None)  # the server's database must live under its own BERTH_ROOT
    proc: subprocess.Popen[bytes] | None = None
    server: Server | None = None
    try:
        subprocess.run(
            [sys.executable, "manage.py", "setup"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [sys.executable, "-c", _CREATE_USERS],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "dashboard.asgi:application",
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_until_up(url, proc, log)
        server = Server(url=url, root=root, run=run, password=password, log=log, env=env)
        yield server
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"preparing the e2e server failed: {exc.cmd}\n{exc.stderr.decode(errors='replace')}"
        )
    finally:
        if server is not None:
            # The backstop for a module whose own clean-up missed a container: nothing of this engine
            # may keep running once its root is gone.
            try:
                remove_leftovers(server)
            except (AssertionError, subprocess.SubprocessError) as exc:
                print(f"warning: e2e clean-up: {exc}", file=sys.stderr)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        # Bridges, the nft table and the DNS server are host-wide: take them off again.
        subprocess.run(
            [sys.executable, "manage.py", "berth", "network", "teardown"],
            cwd=REPO,
            env={**env, "BERTH_MONITOR": "0"},
            capture_output=True,
            timeout=60,
        )
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (no browser download)."""
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Any, berth_server: Server) -> Iterator[Callable[..., Any]]:
    """Factory for fresh pages (own cookies): `new_page(viewport=PHONE, color_scheme="dark")`.

    Every page collects console errors and CSP violations in `page.berth_errors`, so a test can
    assert the page ran cleanly under the Content-Security-Policy.
    """
    contexts: list[Any] = []

    def make(*, viewport: dict[str, int] | None = None, color_scheme: str = "light") -> Any:
        context = browser.new_context(
            base_url=berth_server.url,
            viewport=viewport or DESKTOP,
            color_scheme=color_scheme,
            reduced_motion="reduce",
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(_describe(msg)) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.berth_errors = errors
        return page

    yield make
    for context in contexts:
        context.close()


def _describe(msg: Any) -> str:
    url = (msg.location or {}).get("url", "")
    return f"{msg.text} ({url})" if url else msg.text


def log_in(page: Any, server: Server, username: str, password: str | None = None) -> None:
    """Fill and submit the login form as `username` (the server's shared password by default)."""
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(server.password if password is None else password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def logged_in_page(new_page: Callable[..., Any], berth_server: Server) -> Callable[..., Any]:
    """Factory: `logged_in_page("viewer")` → a page signed in with that role, on the overview."""

    def make(role: str = "admin", **kwargs: Any) -> Any:
        page = new_page(**kwargs)
        log_in(page, berth_server, role)
        page.wait_for_url(berth_server.url + "/")
        return page

    return make


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG under tests/e2e/screenshots/ (kept out of git) and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def run_script(server: Server, name: str, script: str) -> str:
    """`berth run -d` a busybox shell script named `name`; returns the container's ID.

    No network: the tests that use it need none, and host-wide bridge subnets run out under parallel
    sessions.
    """
    berth = ("run", "-d", "--network", "none", "--name", name, "busybox", "sh", "-c", script)
    done = server.berth(*berth, check=False)
    assert done.returncode == 0, f"berth run failed: {done.stderr.strip()}"
    return done.stdout.strip().splitlines()[-1]


def remove_leftovers(server: Server, prefix: str = "", *, volumes: bool = False) -> None:
    """Force-remove the containers (and with `volumes`, the volumes) named `prefix…` a test module made.

    The in-process CLI runs with BERTH_MONITOR=0 so that removing never wakes the server's monitor.
    """
    env = {**server.env, "BERTH_MONITOR": "0"}
    berth = [sys.executable, str(REPO / "manage.py"), "berth"]

    def berth_ok(*args: str, timeout: int) -> str:
        # A clean-up that fails must say so: a silent one leaves containers running after the suite.
        done = subprocess.run([*berth, *args], env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"clean-up `berth {' '.join(args)}` failed: {done.stderr.strip()}"
        return done.stdout

    listed = berth_ok("ps", "-a", "--format", "json", timeout=60).splitlines()
    containers = [name for line in listed if (name := json.loads(line)["Names"]).startswith(prefix)]
    if containers:
        berth_ok("rm", "-f", *containers, timeout=120)
    if volumes:
        ours = [
            name for name in berth_ok("volume", "ls", "-q", timeout=60).split() if name.startswith(prefix)
        ]
        if ours:
            berth_ok("volume", "rm", *ours, timeout=60)
