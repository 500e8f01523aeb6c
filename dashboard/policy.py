"""The one permission check of the dashboard: every view, consumer, form and background job asks here.

Roles come from three Django groups created by `ensure_groups()` (called by `manage.py setup`):
`viewers` read everything, including logs, but change nothing and open no terminal; `operators` also
start/stop containers, open terminals, create containers without host access (no bind mounts, no
privileges, no host namespaces), remove containers, import and tag images, create volumes, and
create, remove, connect and disconnect networks; `admins` (and superusers) may do everything.
Unknown actions are denied for everyone (deny by default), and every denial is logged (SECURITY.md
web checklist 4 and 9).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from engine.errors import PermissionDenied
from engine.services.system import ROLE_GROUPS

log = logging.getLogger(__name__)

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"

# Group name per role; `manage.py setup` creates the groups (engine.services.system.ROLE_GROUPS).
GROUPS: dict[str, str] = dict(zip((VIEWER, OPERATOR, ADMIN), ROLE_GROUPS, strict=True))

_RANK = {VIEWER: 1, OPERATOR: 2, ADMIN: 3}

# The least role an action needs. Anything not listed here is refused.
ACTIONS: dict[str, str] = {
    "view": VIEWER,
    "logs": VIEWER,
    "terminal": OPERATOR,
    "container.lifecycle": OPERATOR,
    "container.create": OPERATOR,
    "container.remove": OPERATOR,
    # The Files tab: viewers browse and view text; a tar download (every byte, owners, modes) and an
    # upload are for operators, as volume backups are (views_files.py).
    "container.download": OPERATOR,
    "container.upload": OPERATOR,
    "image.import": OPERATOR,
    "image.tag": OPERATOR,
    # Export streams every layer of an image; commit makes a new image of a container's files.
    "image.export": OPERATOR,
    "container.commit": OPERATOR,
    "volume.create": OPERATOR,
    # A backup holds every file with its owners and modes, more than the read-only browser shows;
    # a restore writes a volume: both for operators (docs: viewers browse, they do not download).
    "volume.backup": OPERATOR,
    "volume.restore": OPERATOR,
    "network.create": OPERATOR,
    "network.remove": OPERATOR,
    "network.connect": OPERATOR,
    "image.remove": ADMIN,
    "image.prune": ADMIN,
    "volume.remove": ADMIN,
    "volume.prune": ADMIN,
    "network.prune": ADMIN,
    # The audit log is evidence: only admins delete from it (and the prune is itself recorded).
    "event.prune": ADMIN,
    # Alert rules send mail and call webhooks from the server: admins set them, everyone reads them.
    "alert.manage": ADMIN,
    # Registry credentials are the engine's, used by every user's pulls: admins log in and out.
    "registry.login": ADMIN,
    "user.manage": ADMIN,  # the Users pages (views_users): create, role, (de)activate, reset password
    "admin": ADMIN,
}

# Host namespaces a container may join only when an admin asks (each of these turns isolation off).
_HOST_NAMESPACE_KEYS = ("network", "network_mode", "pid", "pid_mode", "ipc", "ipc_mode", "uts", "userns")


def role_of(user: Any) -> str | None:
    """Return "viewer", "operator" or "admin" for an active, authenticated user, else None.

    Superusers are admins. A user in several groups gets the highest role.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return None
    if user.is_superuser:
        return ADMIN
    # One query per call; cached on the user object for the request's lifetime.
    names = getattr(user, "_berth_group_names", None)
    if names is None:
        names = frozenset(user.groups.values_list("name", flat=True))
        user._berth_group_names = names
    best: str | None = None
    for role, group in GROUPS.items():
        if group in names and (best is None or _RANK[role] > _RANK[best]):
            best = role
    return best


def check(user: Any, action: str, obj: Any = None, spec: Mapping[str, Any] | None = None) -> None:
    """Return quietly when `user` may do `action` (on `obj`, with the create/exec `spec`), else raise.

    Raises engine.errors.PermissionDenied (HTTP 403) whose message names the action and what is
    missing. `spec` is the requested container or exec configuration; for non-admins it must not
    ask for host access: bind mounts, `privileged`, `cap_add`, `security_opt`, `devices`, a host
    network/pid/ipc/uts/userns namespace, or turning no-new-privileges off. A privileged exec is
    refused for everyone.
    """
    reason = _denial(user, action, obj, spec)
    if reason is None:
        return
    who = getattr(user, "username", None) or "anonymous"
    # %r: object names are user-controlled text and must not forge log lines.
    log.warning("policy: denied %s for %r on %r: %s", action, who, obj, reason)
    raise PermissionDenied(reason)


def allowed(user: Any, action: str, obj: Any = None, spec: Mapping[str, Any] | None = None) -> bool:
    """Say whether `check()` would pass, without logging (for hiding buttons in templates)."""
    return _denial(user, action, obj, spec) is None


def ensure_groups() -> list[Any]:
    """Create the viewers, operators and admins groups if missing; return them. Idempotent."""
    from django.contrib.auth.models import Group

    return [Group.objects.get_or_create(name=name)[0] for name in GROUPS.values()]


def _denial(user: Any, action: str, obj: Any, spec: Mapping[str, Any] | None) -> str | None:
    """Return why `user` may not do `action`, or None when allowed."""
    needed = ACTIONS.get(action)
    if needed is None:
        return f"unknown action {action!r} is not allowed"
    role = role_of(user)
    if role is None:
        if user is not None and getattr(user, "is_authenticated", False):
            return "your account has no role yet (ask an admin to add you to viewers, operators or admins)"
        return "log in first"
    if _RANK[role] < _RANK[needed]:
        article = "an" if role[0] in "aeiou" else "a"
        return f"{_VERB.get(action, action)} needs the {needed} role; you are {article} {role}"
    if spec:
        if action == "terminal" and spec.get("privileged"):
            return "privileged exec sessions are never allowed from the dashboard"
        if role != ADMIN and action in ("container.create", "terminal"):
            wanted = host_access(spec)
            if wanted:
                return f"only admins may ask for {', '.join(wanted)}"
    return None


_VERB = {
    "view": "viewing",
    "logs": "reading logs",
    "terminal": "opening a terminal",
    "container.lifecycle": "starting, stopping or pausing containers",
    "container.create": "creating containers",
    "container.remove": "removing containers",
    "container.download": "downloading a container's files",
    "container.upload": "uploading files into containers",
    "image.import": "importing images",
    "image.tag": "tagging images",
    "image.export": "exporting images",
    "container.commit": "committing containers",
    "registry.login": "logging in to registries",
    "volume.create": "creating volumes",
    "volume.backup": "downloading volume backups",
    "volume.restore": "restoring volumes from backups",
    "network.create": "creating networks",
    "network.remove": "removing networks",
    "network.connect": "connecting containers to networks",
    "image.remove": "removing images",
    "image.prune": "pruning images",
    "volume.remove": "removing volumes",
    "volume.prune": "pruning volumes",
    "network.prune": "pruning networks",
    "event.prune": "pruning the audit log",
    "alert.manage": "changing alert rules",
    "user.manage": "managing users",
    "admin": "the admin panel",
}


def host_access(spec: Mapping[str, Any]) -> list[str]:
    """List the admin-only parts of a container or exec spec, in words ("bind mounts", "privileged", …).

    Accepts the CLI-like keys the dashboard's forms produce. Unknown keys are ignored here: the
    services validate the spec itself; this only decides who may ask for host access.
    """
    found: list[str] = []
    if _has_bind(spec):
        found.append("bind mounts")
    if spec.get("privileged"):
        found.append("privileged mode")
    if spec.get("cap_add"):
        found.append("added capabilities")
    if spec.get("security_opt"):
        found.append("security options")
    if spec.get("devices"):
        found.append("host devices")
    if spec.get("no_new_privileges") is False:
        found.append("turning no-new-privileges off")
    for key in _HOST_NAMESPACE_KEYS:
        if str(spec.get(key) or "").lower() == "host":
            found.append(f"the host {key.removesuffix('_mode')} namespace")
    return found


def _has_bind(spec: Mapping[str, Any]) -> bool:
    """True when the spec mounts a host path: `binds`, a bind-type mount, or a `-v /host:/ctr` volume."""
    if spec.get("binds"):
        return True
    for mount in _iter(spec.get("mounts")):
        if isinstance(mount, Mapping):
            if str(mount.get("type", "")).lower() == "bind":
                return True
        elif isinstance(mount, str) and "type=bind" in mount.replace(" ", "").lower():
            return True
    for volume in _iter(spec.get("volumes")):
        if isinstance(volume, Mapping):
            if str(volume.get("type", "")).lower() == "bind":
                return True
            source = str(volume.get("source") or "")
        else:
            # "-v /ctr" alone is an anonymous volume; only "-v SRC:DST" names a source.
            text = str(volume)
            source = text.split(":", 1)[0] if ":" in text else ""
        # Docker's rule: a -v source that is a path (not a volume name) is a bind mount.
        if source.startswith(("/", ".", "~")):
            return True
    return False


def _iter(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)):
        return (value,)
    return value
