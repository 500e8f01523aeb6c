"""The effective health check and the health words `ps` shows."""

from __future__ import annotations

from types import SimpleNamespace

from engine.services import healthconfig

SECOND = 1_000_000_000


def _container(healthcheck=None, *, on_failure=None, state="running", health=None, shell=None):
    config = {}
    if healthcheck is not None:
        config["Healthcheck"] = healthcheck
    if on_failure is not None:
        config["HealthcheckOnFailureAction"] = on_failure
    if shell is not None:
        config["Shell"] = shell
    return SimpleNamespace(config=config, state=state, health=health or {})


def test_cmd_shell_runs_through_sh_with_docker_defaults():
    spec = healthconfig.effective(_container({"Test": ["CMD-SHELL", "test -e /tmp/ok"]}))
    assert spec == healthconfig.HealthSpec(
        argv=["/bin/sh", "-c", "test -e /tmp/ok"],
        interval=30.0,
        timeout=30.0,
        start_period=0.0,
        start_interval=5.0,
        retries=3,
        on_failure="none",
    )


def test_cmd_runs_its_argv_and_durations_are_nanoseconds():
    check = {
        "Test": ["CMD", "curl", "-f", "http://localhost/"],
        "Interval": SECOND // 2,
        "Timeout": 2 * SECOND,
        "StartPeriod": 10 * SECOND,
        "StartInterval": SECOND,
        "Retries": 2,
    }
    spec = healthconfig.effective(_container(check, on_failure="restart"))
    assert spec.argv == ["curl", "-f", "http://localhost/"]
    assert (spec.interval, spec.timeout, spec.start_period, spec.start_interval) == (0.5, 2.0, 10.0, 1.0)
    assert (spec.retries, spec.on_failure) == (2, "restart")


def test_cmd_shell_uses_the_containers_shell_when_set():
    spec = healthconfig.effective(_container({"Test": ["CMD-SHELL", "true"]}, shell=["/bin/bash", "-ec"]))
    assert spec.argv == ["/bin/bash", "-ec", "true"]


def test_none_empty_or_absent_means_no_check():
    assert healthconfig.effective(_container()) is None
    assert healthconfig.effective(_container({"Test": ["NONE"]})) is None
    assert healthconfig.effective(_container({"Test": []})) is None
    assert healthconfig.effective(_container({"Test": ["CMD"]})) is None
    assert healthconfig.effective(_container({"Test": ["CMD-SHELL", ""]})) is None


def test_an_unknown_on_failure_action_falls_back_to_none():
    spec = healthconfig.effective(_container({"Test": ["CMD", "true"]}, on_failure="explode"))
    assert spec.on_failure == "none"


def test_status_suffix_reads_like_docker_ps():
    assert healthconfig.status_suffix(_container(health={"Status": "starting"})) == " (health: starting)"
    assert healthconfig.status_suffix(_container(health={"Status": "healthy"})) == " (healthy)"
    assert healthconfig.status_suffix(_container(health={"Status": "unhealthy"})) == " (unhealthy)"
    assert healthconfig.status_suffix(_container()) == ""


def test_status_suffix_is_empty_unless_running():
    # Docker shows "Exited (0) …" without health even though State.Health is kept.
    assert healthconfig.status_suffix(_container(state="exited", health={"Status": "healthy"})) == ""


def test_a_start_resets_status_and_streak_but_keeps_the_log():
    log = [{"Start": "a", "End": "b", "ExitCode": 1, "Output": "no"}]
    container = _container(
        {"Test": ["CMD", "true"]}, health={"Status": "unhealthy", "FailingStreak": 4, "Log": log}
    )
    assert healthconfig.started_health(container) == {"Status": "starting", "FailingStreak": 0, "Log": log}


def test_a_start_without_a_check_clears_the_health():
    container = _container({"Test": ["NONE"]}, health={"Status": "healthy", "FailingStreak": 0, "Log": []})
    assert healthconfig.started_health(container) == {}


def _spec(**overrides):
    fields = dict(
        argv=["true"],
        interval=1.0,
        timeout=1.0,
        start_period=0.0,
        start_interval=5.0,
        retries=2,
        on_failure="none",
    )
    fields.update(overrides)
    return healthconfig.HealthSpec(**fields)


def _entry(code):
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": ""}


def test_unhealthy_only_after_retries_consecutive_failures():
    health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    health = healthconfig.judge(health, _entry(1), _spec(), since_start=5)
    assert (health["Status"], health["FailingStreak"]) == ("starting", 1)
    health = healthconfig.judge(health, _entry(1), _spec(), since_start=6)
    assert (health["Status"], health["FailingStreak"]) == ("unhealthy", 2)


def test_a_success_makes_it_healthy_and_resets_the_streak():
    health = {"Status": "unhealthy", "FailingStreak": 7, "Log": []}
    health = healthconfig.judge(health, _entry(0), _spec(), since_start=50)
    assert (health["Status"], health["FailingStreak"]) == ("healthy", 0)


def test_a_healthy_container_stays_healthy_until_retries_is_reached():
    health = {"Status": "healthy", "FailingStreak": 0, "Log": []}
    health = healthconfig.judge(health, _entry(1), _spec(), since_start=50)
    assert (health["Status"], health["FailingStreak"]) == ("healthy", 1)


def test_failures_in_the_start_period_do_not_count_while_starting():
    spec = _spec(start_period=10, retries=1)
    health = healthconfig.judge({"Status": "starting"}, _entry(1), spec, since_start=3)
    assert (health["Status"], health["FailingStreak"]) == ("starting", 0)
    # Once it was healthy the start period no longer protects it (Docker checks the status).
    health = healthconfig.judge({"Status": "healthy"}, _entry(1), spec, since_start=3)
    assert health["Status"] == "unhealthy"


def test_the_log_keeps_the_last_five_results():
    health = {
        "Status": "healthy",
        "FailingStreak": 0,
        "Log": [_entry(0) | {"Start": str(i)} for i in range(5)],
    }
    health = healthconfig.judge(health, _entry(0) | {"Start": "new"}, _spec(), since_start=50)
    assert [item["Start"] for item in health["Log"]] == ["1", "2", "3", "4", "new"]


def test_next_delay_uses_the_start_interval_during_the_start_period_only():
    spec = _spec(interval=30, start_period=20, start_interval=2)
    assert healthconfig.next_delay(spec, status="starting", since_start=1) == 2
    # Never past the end of the start period: the first check that counts comes on time.
    assert healthconfig.next_delay(spec, status="starting", since_start=19.5) == 0.5
    assert healthconfig.next_delay(spec, status="healthy", since_start=1) == 19
    assert healthconfig.next_delay(spec, status="starting", since_start=25) == 30


def test_durations_read_like_go():
    assert healthconfig.duration_text(0.5) == "500ms"
    assert healthconfig.duration_text(1) == "1s"
    assert healthconfig.duration_text(30) == "30s"
    assert healthconfig.duration_text(90) == "1m30s"
    assert healthconfig.duration_text(3600) == "1h0m0s"
