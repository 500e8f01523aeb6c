"""Alert notifications: the webhook signature, the body Slack/Mattermost accept, the back-off schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from engine.models import Alert, AlertRule
from engine.net import webhook
from engine.services import notify


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"text":"hi"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert webhook.signature("s3cret", body) == f"sha256={expected}"
    assert webhook.verify("s3cret", body, f"sha256={expected}")
    # One changed byte, or another secret, and a receiver must refuse it.
    assert not webhook.verify("s3cret", body + b" ", f"sha256={expected}")
    assert not webhook.verify("other", body, f"sha256={expected}")


def test_headers_carry_a_timestamp_and_sign_only_with_a_secret() -> None:
    signed = webhook.headers(b"{}", secret="k", timestamp=1700000000)
    assert signed["X-Berth-Timestamp"] == "1700000000"
    assert signed["X-Berth-Signature"].startswith("sha256=")
    assert "X-Berth-Signature" not in webhook.headers(b"{}", secret="")


def test_check_url_allows_only_http_and_https() -> None:
    assert webhook.check_url("https://hooks.example.com/x") is None
    assert webhook.check_url("http://127.0.0.1:8080/") is None
    assert "http:// or https://" in (webhook.check_url("gopher://x") or "")
    assert "bad port" in (webhook.check_url("http://x:99999/") or "")


def test_back_off_doubles_from_five_seconds() -> None:
    assert notify.schedule() == [5, 10, 20, 40, 80, 160, 320]
    # Eight attempts in all, spread over about ten minutes.
    assert len(notify.schedule()) + 1 == notify.MAX_ATTEMPTS
    assert sum(notify.schedule()) == 635


def _alert() -> Alert:
    rule = AlertRule(name="oom-watch", kind="oom")
    return Alert(
        id=7,
        rule=rule,
        subject_type="container",
        subject_id="c" * 64,
        subject_name="hog",
        message="container hog was OOM-killed",
        opened=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def test_body_has_slack_text_and_the_structured_alert() -> None:
    data = json.loads(notify.body(_alert(), "open"))
    assert "oom-watch" in data["text"] and "OOM-killed" in data["text"]
    assert data["alert"]["rule"] == "oom-watch"
    assert data["alert"]["kind"] == "oom"
    assert data["alert"]["state"] == "open"
    assert data["alert"]["subject"] == {"type": "container", "id": "c" * 64, "name": "hog"}
    assert data["alert"]["opened"] == "2026-01-02T03:04:05+00:00"
    assert data["alert"]["resolved"] is None


def test_resolve_body_says_resolved_with_its_time() -> None:
    alert = _alert()
    alert.resolved = datetime(2026, 1, 2, 4, 0, tzinfo=UTC)
    data = json.loads(notify.body(alert, "resolve"))
    assert data["alert"]["state"] == "resolved"
    assert data["alert"]["resolved"] == "2026-01-02T04:00:00+00:00"
    assert "RESOLVED" in data["text"]
