"""Dashboard users and their roles, for both front ends (the Users pages and `berth user …`).

A role is membership of one of the groups `manage.py setup` creates (viewers, operators, admins);
superusers count as admins. Every change is an event (object type "user"). Passwords go through
Django's validators (settings.AUTH_PASSWORD_VALIDATORS) and are never recorded. The last active
admin can be neither demoted nor deactivated, so the dashboard always has someone who can manage it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction

from engine import events
from engine.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from engine.services.system import ROLE_GROUPS

ROLES = ("viewer", "operator", "admin")
GROUP_OF = dict(zip(ROLES, ROLE_GROUPS, strict=True))
logger = logging.getLogger(__name__)


def role_of(user: Any) -> str | None:
    """ "viewer", "operator" or "admin" (superusers are admins; the highest group wins), else None."""
    if user.is_superuser:
        return "admin"
    names = {g.name for g in user.groups.all()}
    best = None
    for role in ROLES:
        if GROUP_OF[role] in names:
            best = role
    return best


def list_users() -> list[Any]:
    """Every user, by name, with `role` set on each (not saved)."""
    users = list(get_user_model().objects.order_by("username").prefetch_related("groups"))
    for user in users:
        user.role = role_of(user)  # type: ignore[attr-defined]  # for rendering, not saved
    return users


def get(username: str) -> Any:
    """The user called `username`; raise NotFound."""
    try:
        user = get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise NotFound(f"no such user: {username}") from None
    user.role = role_of(user)  # type: ignore[attr-defined]
    return user


def check_password_strength(password: str, user: Any = None) -> None:
    """Raise InvalidArgument with the first complaint of Django's password validators."""
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise InvalidArgument(f"password: {exc.messages[0]}") from None


def create(username: str, password: str, *, role: str, email: str = "") -> Any:
    """Create an active user with `role`. Raise InvalidArgument for a bad name, role or password,
    AlreadyExists when the name is taken."""
    username = username.strip()
    _check_username(username)
    _check_role(role)
    users = get_user_model()
    if users.objects.filter(username=username).exists():
        raise AlreadyExists(f"user {username} already exists")
    check_password_strength(password, users(username=username, email=email))
    with transaction.atomic():
        user = users.objects.create_user(username, email, password)
        user.groups.add(_group(role))
    events.record("user", "create", object_id=str(user.pk), object_name=username, attributes={"role": role})
    user.role = role  # type: ignore[attr-defined]
    return user


def set_role(username: str, role: str) -> Any:
    """Make `username` a viewer, operator or admin (only that group; a demoted superuser loses the flag)."""
    _check_role(role)
    user = get(username)
    if user.role == "admin" and role != "admin" and user.is_active:
        _refuse_last_admin(user, "demote")
    before = user.role
    with transaction.atomic():
        user.groups.remove(*Group.objects.filter(name__in=ROLE_GROUPS))
        user.groups.add(_group(role))
        if role != "admin" and (user.is_superuser or user.is_staff):
            user.is_superuser = user.is_staff = False
            user.save(update_fields=["is_superuser", "is_staff"])
    events.record(
        "user", "role", object_id=str(user.pk), object_name=username, attributes={"from": before, "to": role}
    )
    _revoke(user)
    user.role = role
    return user


def set_active(username: str, active: bool) -> Any:
    """Activate or deactivate `username`. A deactivated user cannot log in; their sessions end."""
    user = get(username)
    if user.is_active == active:
        return user
    if not active and user.role == "admin":
        _refuse_last_admin(user, "deactivate")
    user.is_active = active
    user.save(update_fields=["is_active"])
    events.record(
        "user", "activate" if active else "deactivate", object_id=str(user.pk), object_name=username
    )
    if not active:
        _revoke(user)
    return user


def set_password(username: str, password: str, *, own: bool = False) -> Any:
    """Set a new password (validated). `own` marks a user changing their own, for the event.

    Django's session hash changes with the password, so the user's other sessions end.
    """
    user = get(username)
    check_password_strength(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    events.record(
        "user", "passwd", object_id=str(user.pk), object_name=username, attributes={"reset": not own}
    )
    _revoke(user)
    return user


# The user events after which the user's open websockets must close (object_id holds the user's pk).
# The server's monitor (dashboard/monitor.py) follows the events table and closes them for these,
# whichever process recorded the change; "activate" and "create" leave nothing open to close.
REVOKING_ACTIONS = frozenset({"deactivate", "role", "passwd"})


def revocation_group(user_id: int) -> str:
    """The channel-layer group of a user's open websockets (dashboard/consumers/base.py joins it)."""
    return f"user.{user_id}"


def close_sockets(user_id: int) -> None:
    """Ask every open websocket of `user_id` this channel layer reaches to close (code 4401).

    Best effort and idempotent: a socket that already closed has left the group, and a second close of
    a closing socket is ignored by the server. Raises nothing; the change itself is done and recorded.
    """
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(revocation_group(user_id), {"type": "user.revoke"})
    except Exception:  # noqa: BLE001 — the change itself is done and recorded
        logger.debug("could not close the sockets of user %s", user_id, exc_info=True)


def _revoke(user: Any) -> None:
    """Close the user's open websockets: Channels checks the session only when a socket connects.

    This reaches the sockets of this process at once (all of them with Redis). With the in-memory
    channel layer a CLI process reaches none; the server's monitor closes them when it sees the
    event (REVOKING_ACTIONS), within its poll interval. A page missing both still loses its session
    on the next request.
    """
    close_sockets(user.pk)


def admins_left(excluding: Iterable[int] = ()) -> int:
    """How many active admins there are, not counting the user ids in `excluding`."""
    users = get_user_model().objects.filter(is_active=True).exclude(pk__in=list(excluding))
    return users.filter(is_superuser=True).count() + (
        users.filter(is_superuser=False, groups__name=GROUP_OF["admin"]).distinct().count()
    )


def _refuse_last_admin(user: Any, verb: str) -> None:
    if admins_left(excluding=[user.pk]) == 0:
        raise InvalidState(
            f"cannot {verb} {user.username}: it is the last active admin (make another user an admin first)"
        )


def _check_username(username: str) -> None:
    if not username or len(username) > 150:
        raise InvalidArgument("user name: give 1 to 150 characters")
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise InvalidArgument("user name: use only letters, digits and @ . + - _") from None


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, not {role!r}")


def _group(role: str) -> Group:
    return Group.objects.get_or_create(name=GROUP_OF[role])[0]
