"""Alert rules: validation (one clear error per bad field), scope parsing and matching."""

from __future__ import annotations

import pytest

from engine.errors import InvalidArgument
from engine.services import alertrules


def clean(**fields):  # type: ignore[no-untyped-def]
    return alertrules.clean({"name": "r1", "kind": "oom", **fields})


def error_of(**fields) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as info:
        clean(**fields)
    return str(info.value)


def test_a_minimal_rule_gets_defaults() -> None:
    values = clean()
    assert (values["scope"], values["scope_value"], values["threshold"], values["minutes"]) == (
        "all",
        "",
        0.0,
        0,
    )
    assert values["notify_dashboard"] and values["enabled"]


def test_timed_kinds_get_their_default_threshold_and_window() -> None:
    values = clean(kind="cpu")
    assert (values["threshold"], values["minutes"]) == (90.0, 5)
    assert clean(kind="disk")["threshold"] == 10.0


def test_unknown_kind_is_named() -> None:
    assert "unknown alert kind 'explode'" in error_of(kind="explode")


@pytest.mark.parametrize(
    ("kind", "threshold"),
    [("memory", 0), ("memory", 101), ("disk", 100.5), ("disk", -1), ("restart_loop", 0), ("cpu", "lots")],
)
def test_threshold_out_of_range_is_refused(kind: str, threshold: object) -> None:
    assert "threshold" in error_of(kind=kind, threshold=threshold)


def test_restart_loop_threshold_is_a_whole_count() -> None:
    assert "whole number" in error_of(kind="restart_loop", threshold=2.5)
    assert clean(kind="restart_loop", threshold="4")["threshold"] == 4.0


def test_minutes_must_be_in_range() -> None:
    assert "minutes" in error_of(kind="cpu", minutes=0)
    assert "minutes" in error_of(kind="cpu", minutes="soon")


def test_label_scope_must_be_key_value() -> None:
    assert "is not key=value" in error_of(scope="label", scope_value="tier")
    assert "is not key=value" in error_of(scope="label", scope_value="=web")
    assert clean(scope="label", scope_value="tier=web")["scope_value"] == "tier=web"


def test_name_scope_needs_a_name_and_disk_needs_all() -> None:
    assert "needs a container name" in error_of(scope="name", scope_value="")
    assert "scope must be all" in error_of(kind="disk", scope="name", scope_value="web")
    assert "unknown scope" in error_of(scope="everything")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "file:///etc/passwd", "javascript:alert(1)", "example.com"]
)
def test_webhook_url_must_be_http_or_https(url: str) -> None:
    assert "http:// or https://" in error_of(webhook_url=url)


def test_webhook_url_needs_a_host_and_a_secret_needs_a_url() -> None:
    assert "no host" in error_of(webhook_url="http:///path")
    assert "needs a webhook URL" in error_of(webhook_secret="s3cret")


def test_email_addresses_are_checked_one_by_one() -> None:
    assert "'not-an-address'" in error_of(email_to="ops@example.com, not-an-address")
    assert clean(email_to=" a@example.com ,b@example.com")["email_to"] == "a@example.com, b@example.com"


def test_bad_names_and_unknown_fields_are_refused() -> None:
    assert "invalid rule name" in error_of(name="-x")
    assert "invalid rule name" in error_of(name="")
    assert "unknown alert rule field: colour" in error_of(colour="red")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("all", ("all", "")), ("label=tier=web", ("label", "tier=web")), ("name=db", ("name", "db"))],
)
def test_parse_scope(text: str, parsed: tuple[str, str]) -> None:
    assert alertrules.parse_scope(text) == parsed


def test_parse_scope_refuses_other_words() -> None:
    with pytest.raises(InvalidArgument, match="label=KEY=VALUE"):
        alertrules.parse_scope("team=ops")


def test_scope_matching() -> None:
    labels = {"tier": "web", "team": "a=b"}
    assert alertrules.matches("all", "", name="x", labels=None)
    assert alertrules.matches("name", "web1", name="web1", labels=labels)
    assert not alertrules.matches("name", "web1", name="web10", labels=labels)
    assert alertrules.matches("label", "tier=web", name="x", labels=labels)
    assert alertrules.matches("label", "team=a=b", name="x", labels=labels)  # only the first = splits
    assert not alertrules.matches("label", "tier=db", name="x", labels=labels)
    assert not alertrules.matches("label", "tier=web", name="x", labels=None)  # removed: labels unknown
    assert alertrules.matches("label", "empty=", name="x", labels={"empty": ""})
