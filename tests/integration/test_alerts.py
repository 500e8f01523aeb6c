"""Alerts end to end: an OOM-killed container opens one alert, a signed webhook hears of it, removal resolves it.

Driven through the CLI, with the real monitor process (started by the container starts) evaluating
the rules: no server runs, as after `berth run` on a plain host.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.net import webhook
from tests.polling import wait_until

pytestmark = pytest.mark.root

SECRET = "test-secret"
HOG = 'x=$(head -c 200m /dev/zero | tr "\\0" a); echo survived'


@dataclass
class Receiver:
    """What the webhook receiver saw: every POST with its status, and whether its signature held."""

    url: str = ""
    fail_first: int = 0
    posts: list[dict] = field(default_factory=list)  # type: ignore[type-arg]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, state: str) -> list[dict]:  # type: ignore[type-arg]
        with self.lock:
            return [p for p in self.posts if p["status"] == 200 and p["body"]["alert"]["state"] == state]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    seen = Receiver(fail_first=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            with seen.lock:
                status = 500 if seen.fail_first > 0 else 200
                seen.fail_first -= 1
                seen.posts.append(
                    {
                        "status": status,
                        "signed": webhook.verify(SECRET, raw, self.headers.get("X-Berth-Signature", "")),
                        "timestamp": self.headers.get("X-Berth-Timestamp", ""),
                        "body": json.loads(raw),
                    }
                )
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield seen
    server.shutdown()
    server.server_close()


def alerts_json(berth_cli, *flags: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [json.loads(line) for line in berth_cli.ok("alerts", *flags, "--format", "json").splitlines()]


def alert_events(berth_cli) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    out = berth_cli.ok("events", "--filter", "type=alert", "--format", "json")
    return [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in map(json.loads, out.splitlines())]


def test_an_oom_kill_opens_one_alert_notifies_a_signed_webhook_and_resolves_once(berth_cli, receiver) -> None:  # type: ignore[no-untyped-def]
    berth_cli.ok(
        "alerts", "rule-add", "oomwatch", "--kind", "oom", "--webhook", receiver.url, "--secret", SECRET
    )
    # A bystander keeps the monitor up (rules apply while some container runs), so the retry after
    # the receiver's first 500 is sent by the same monitor, 5 s later.
    berth_cli.ok("run", "-d", "--name", "keeper", "busybox", "sleep", "1000")
    proc = berth_cli("run", "--name", "hog", "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c", HOG)
    assert proc.returncode == 137, proc.stderr

    wait_until(lambda: receiver.accepted("open"), timeout=60, what="the signed open POST")
    (opened,) = alerts_json(berth_cli)
    assert (opened["Rule"], opened["Subject"], opened["State"]) == ("oomwatch", "hog", "open")
    # The first attempt got a 500 and was retried with back-off; every POST was signed.
    assert [p["status"] for p in receiver.posts] == [500, 200]
    assert all(p["signed"] and p["timestamp"].isdigit() for p in receiver.posts)
    body = receiver.accepted("open")[0]["body"]
    assert body["alert"]["rule"] == "oomwatch" and body["alert"]["subject"]["name"] == "hog"
    assert "OOM-killed" in body["text"]

    berth_cli.ok("rm", "hog")
    wait_until(lambda: receiver.accepted("resolved"), timeout=60, what="the signed resolve POST")
    (resolved,) = alerts_json(berth_cli, "--all")
    assert (resolved["ID"], resolved["State"]) == (opened["ID"], "resolved")
    assert not alerts_json(berth_cli)  # nothing open any more
    # Opened once and resolved once, as events and as notifications, however many rounds ran since.
    assert sorted(alert_events(berth_cli)) == [("open", "oomwatch"), ("resolve", "oomwatch")]
    assert len(receiver.accepted("open")) == 1 and len(receiver.accepted("resolved")) == 1
    deliveries = berth_cli.ok("alerts", "deliveries")
    assert deliveries.count("sent") == 2, deliveries


def test_rule_commands_validate_and_list(berth_cli) -> None:  # type: ignore[no-untyped-def]
    error = berth_cli.fail("alerts", "rule-add", "x", "--kind", "oom", "--webhook", "ftp://example.com/")
    assert "http:// or https://" in error
    assert "unknown alert kind" in berth_cli.fail("alerts", "rule-add", "x", "--kind", "boom")
    assert "label=KEY=VALUE" in berth_cli.fail("alerts", "rule-add", "x", "--kind", "oom", "--scope", "tier")
    berth_cli.ok("alerts", "rule-add", "busy", "--kind", "cpu", "--threshold", "80", "--minutes", "2")
    berth_cli.ok(
        "alerts", "rule-add", "web", "--kind", "exit", "--scope", "label=tier=web", "--email", "a@b.example"
    )
    rules = berth_cli.ok("alerts", "rules")
    assert "> 80 % for 2 min" in rules and "label=tier=web" in rules and "email" in rules
    berth_cli.ok("alerts", "rule-disable", "busy")
    assert json.loads(berth_cli.ok("alerts", "rules", "--format", "json").splitlines()[0])["Enabled"] is False
    berth_cli.ok("alerts", "rule-rm", "busy", "web")
    assert "no such alert rule: web" in berth_cli.fail("alerts", "rule-rm", "web")
    assert berth_cli.ok("alerts", "ack") == "0 alerts marked as seen\n"


def test_a_crash_alerts_but_a_stop_or_restart_by_the_user_does_not(berth_cli) -> None:  # type: ignore[no-untyped-def]
    berth_cli.ok("alerts", "rule-add", "crash", "--kind", "exit")
    berth_cli.ok("run", "-d", "--name", "calm", "busybox", "sleep", "1000")
    berth_cli.ok("restart", "-t", "0", "calm")
    berth_cli.ok("stop", "-t", "0", "calm")
    assert berth_cli("run", "--name", "crasher", "busybox", "sh", "-c", "exit 3").returncode == 3
    # Events are evaluated in order: once the crash has its alert, the stop and restart were judged.
    wait_until(lambda: alerts_json(berth_cli), timeout=60, what="the crash's alert")
    (alert,) = alerts_json(berth_cli, "--all")
    assert (alert["Subject"], alert["Message"]) == ("crasher", "container crasher exited with code 3")
