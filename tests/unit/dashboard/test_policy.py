"""dashboard.policy: who may do what. Deny by default; host access only for admins."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group

from dashboard import policy
from engine.errors import PermissionDenied

pytestmark = pytest.mark.django_db

READ = ("view", "logs")
OPERATE = (
    "terminal",
    "container.lifecycle",
    "container.create",
    "container.remove",
    "image.import",
    "image.tag",
    "volume.create",
)
ADMINISTER = ("image.remove", "image.prune", "volume.remove", "volume.prune", "admin")


@pytest.fixture
def make_user(django_user_model: Any) -> Any:
    def make(name: str, group: str | None = None, **extra: Any) -> Any:
        policy.ensure_groups()
        # No password: hashing one (PBKDF2) per test would dominate the run time.
        user = django_user_model.objects.create_user(name, password=None, **extra)
        if group:
            user.groups.add(Group.objects.get(name=group))
        return user

    return make


def test_ensure_groups_creates_the_three_groups_once() -> None:
    policy.ensure_groups()
    policy.ensure_groups()
    assert sorted(Group.objects.values_list("name", flat=True)) == ["admins", "operators", "viewers"]


def test_role_of_follows_the_group(make_user: Any) -> None:
    assert policy.role_of(make_user("v", "viewers")) == "viewer"
    assert policy.role_of(make_user("o", "operators")) == "operator"
    assert policy.role_of(make_user("a", "admins")) == "admin"


def test_a_superuser_is_an_admin_without_any_group(make_user: Any) -> None:
    assert policy.role_of(make_user("root", is_superuser=True)) == "admin"


def test_a_user_in_several_groups_gets_the_highest_role(make_user: Any) -> None:
    user = make_user("both", "viewers")
    user.groups.add(Group.objects.get(name="operators"))
    assert policy.role_of(user) == "operator"


def test_anonymous_inactive_and_groupless_users_have_no_role(make_user: Any) -> None:
    assert policy.role_of(AnonymousUser()) is None
    assert policy.role_of(None) is None
    assert policy.role_of(make_user("gone", "admins", is_active=False)) is None
    assert policy.role_of(make_user("nobody")) is None


@pytest.mark.parametrize("action", READ)
def test_a_viewer_may_read(make_user: Any, action: str) -> None:
    policy.check(make_user("v", "viewers"), action)


@pytest.mark.parametrize("action", OPERATE + ADMINISTER)
def test_a_viewer_may_change_nothing_and_open_no_terminal(make_user: Any, action: str) -> None:
    with pytest.raises(PermissionDenied) as exc:
        policy.check(make_user("v", "viewers"), action)
    assert exc.value.status == 403
    assert "you are a viewer" in str(exc.value)


@pytest.mark.parametrize("action", READ + OPERATE)
def test_an_operator_may_operate(make_user: Any, action: str) -> None:
    policy.check(make_user("o", "operators"), action)


@pytest.mark.parametrize("action", ADMINISTER)
def test_an_operator_may_not_remove_images_or_volumes_or_prune(make_user: Any, action: str) -> None:
    assert not policy.allowed(make_user("o", "operators"), action)


@pytest.mark.parametrize("action", READ + OPERATE + ADMINISTER)
def test_an_admin_may_do_everything(make_user: Any, action: str) -> None:
    policy.check(make_user("a", "admins"), action)


def test_an_unknown_action_is_denied_even_to_a_superuser(make_user: Any) -> None:
    with pytest.raises(PermissionDenied, match="unknown action"):
        policy.check(make_user("root", is_superuser=True), "container.delete_host")


def test_an_anonymous_user_is_told_to_log_in() -> None:
    with pytest.raises(PermissionDenied, match="log in"):
        policy.check(AnonymousUser(), "view")


def test_a_user_without_a_role_is_told_to_ask_an_admin(make_user: Any) -> None:
    with pytest.raises(PermissionDenied, match="no role"):
        policy.check(make_user("nobody"), "view")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"binds": ["/etc:/host-etc"]}, "bind mounts"),
        ({"mounts": [{"type": "bind", "source": "/", "target": "/host"}]}, "bind mounts"),
        ({"mounts": ["type=bind,source=/,target=/host"]}, "bind mounts"),
        ({"volumes": ["/var/run:/run/host"]}, "bind mounts"),
        ({"volumes": ["./data:/data"]}, "bind mounts"),
        ({"volumes": [{"type": "bind", "source": "/srv", "target": "/srv"}]}, "bind mounts"),
        ({"privileged": True}, "privileged mode"),
        ({"cap_add": ["SYS_ADMIN"]}, "added capabilities"),
        ({"security_opt": ["seccomp=unconfined"]}, "security options"),
        ({"devices": ["/dev/sda"]}, "host devices"),
        ({"network": "host"}, "host network namespace"),
        ({"network_mode": "HOST"}, "host network namespace"),
        ({"pid": "host"}, "host pid namespace"),
        ({"ipc_mode": "host"}, "host ipc namespace"),
        ({"no_new_privileges": False}, "no-new-privileges off"),
    ],
)
def test_an_operator_may_not_create_a_container_with_host_access(
    make_user: Any, spec: dict, words: str
) -> None:
    with pytest.raises(PermissionDenied) as exc:
        policy.check(make_user("o", "operators"), "container.create", spec=spec)
    assert words in str(exc.value)
    assert "only admins" in str(exc.value)


def test_an_operator_may_create_a_container_with_named_and_anonymous_volumes(make_user: Any) -> None:
    spec = {
        "image": "busybox",
        "volumes": ["data:/data", "/scratch", {"type": "volume", "source": "logs", "target": "/logs"}],
        "mounts": [{"type": "tmpfs", "target": "/tmp"}],
        "network": "bridge",
        "privileged": False,
        "cap_add": [],
        "no_new_privileges": True,
    }
    policy.check(make_user("o", "operators"), "container.create", spec=spec)


def test_an_admin_may_create_a_privileged_container_with_bind_mounts(make_user: Any) -> None:
    spec = {"privileged": True, "binds": ["/srv:/srv"], "network": "host"}
    policy.check(make_user("a", "admins"), "container.create", spec=spec)


def test_a_privileged_exec_is_refused_even_to_an_admin(make_user: Any) -> None:
    with pytest.raises(PermissionDenied, match="privileged exec"):
        policy.check(make_user("root", is_superuser=True), "terminal", spec={"privileged": True})


def test_allowed_does_not_raise(make_user: Any) -> None:
    viewer = make_user("v", "viewers")
    assert policy.allowed(viewer, "view") is True
    assert policy.allowed(viewer, "terminal") is False
    assert policy.allowed(viewer, "no.such.action") is False


def test_a_denial_is_logged_with_the_user_and_action(make_user: Any, caplog: Any) -> None:
    with caplog.at_level("WARNING", logger="dashboard.policy"), pytest.raises(PermissionDenied):
        policy.check(make_user("v", "viewers"), "terminal", obj="web")
    assert "denied terminal for 'v' on 'web'" in caplog.text
