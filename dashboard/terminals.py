"""Terminal grants and live terminal sessions of this server process.

A terminal opens in two steps (SECURITY.md web checklist 2): a CSRF-protected POST asks for a grant
and gets a random 128-bit token bound to (user id, container id, command, exec user), valid for
`TOKEN_TTL` seconds; the websocket then presents the token exactly once. A token is refused when it
is unknown, expired, already used, or presented by another user or for another container.

Live sessions are counted per user (`MAX_SESSIONS_PER_USER`) and can be closed from outside: by user
(logout, role change) and by container (removal). The consumer registers a close callback that runs
on its event loop.

Everything lives in an in-process dict guarded by a lock. That is right for the one daphne process
Berth runs; several server processes would need the grants in a shared store (the cache or the DB),
because the POST and the websocket could then land in different processes.
"""

from __future__ import annotations

import secrets
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.errors import CommandNotRunnable, Conflict, InvalidArgument, PermissionDenied

TOKEN_TTL = 30.0
MAX_PENDING_TOKENS = 1000
MAX_SESSIONS_PER_USER = 5
IDLE_TIMEOUT = 15 * 60.0
MAX_FRAME = 64 * 1024
DEFAULT_COMMAND = ("/bin/sh",)
# The shells the chooser may offer; the terminal tab offers those the container has (services/shells).
COMMANDS: dict[str, tuple[str, ...]] = {
    "/bin/sh": ("/bin/sh",),
    "/bin/bash": ("/bin/bash",),
    "/bin/ash": ("/bin/ash",),
    "/bin/zsh": ("/bin/zsh",),
}
CUSTOM = "custom"  # the chooser's value for "the command typed in the Custom field"
ATTACH = "attach"  # the chooser's value for "attach to the main process" (containers run with -t)
MAX_COMMAND = 1024
MAX_ARGS = 64


@dataclass(frozen=True)
class Grant:
    """What one token allows: this user, this container, this command, as this exec user."""

    user_id: int
    container_id: str
    command: tuple[str, ...]
    exec_user: str | None
    expires: float
    attach: bool = False  # the container's own terminal (conmon's attach socket), not an exec


@dataclass
class Session:
    """A live terminal: who, where, since when, and how to close it from outside."""

    key: str
    user_id: int
    container_id: str
    command: tuple[str, ...]
    opened: float = field(default_factory=time.monotonic)
    close: Callable[[str], None] | None = None


class TerminalManager:
    """Grants and sessions for one process; thread-safe. Tests may build their own instance."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self._sessions: dict[str, Session] = {}

    # -- grants --------------------------------------------------------------------------------

    def issue(
        self,
        *,
        user_id: int,
        container_id: str,
        command: tuple[str, ...],
        exec_user: str | None = None,
        attach: bool = False,
    ) -> str:
        """Return a fresh single-use token for this user, container and command."""
        token = secrets.token_urlsafe(16)  # 128 random bits
        with self._lock:
            self._expire_locked()
            if len(self._grants) >= MAX_PENDING_TOKENS:
                raise Conflict("too many terminal requests are pending; try again in a minute")
            self._grants[token] = Grant(
                user_id, container_id, tuple(command), exec_user, self._clock() + TOKEN_TTL, attach
            )
        return token

    def redeem(self, token: str, *, user_id: int, container_id: str) -> Grant:
        """Consume `token` and return its grant; raise PermissionDenied if it may not be used.

        The token is spent whatever the outcome, so a wrong guess cannot be retried with it.
        """
        with self._lock:
            grant = self._grants.pop(token, None) if token else None
        if grant is None:
            raise PermissionDenied("the terminal token is unknown or was already used")
        if grant.expires < self._clock():
            raise PermissionDenied("the terminal token has expired; open the terminal again")
        if grant.user_id != user_id:
            raise PermissionDenied("the terminal token belongs to another user")
        if grant.container_id != container_id:
            raise PermissionDenied("the terminal token is for another container")
        return grant

    def _expire_locked(self) -> None:
        now = self._clock()
        for token in [t for t, g in self._grants.items() if g.expires < now]:
            del self._grants[token]

    # -- sessions ------------------------------------------------------------------------------

    def register(
        self,
        *,
        user_id: int,
        container_id: str,
        command: tuple[str, ...],
        close: Callable[[str], None] | None = None,
    ) -> Session:
        """Count a new live session; raise Conflict when the user already has the maximum."""
        with self._lock:
            mine = sum(1 for s in self._sessions.values() if s.user_id == user_id)
            if mine >= MAX_SESSIONS_PER_USER:
                raise Conflict(
                    f"you already have {mine} terminals open; close one first",
                    hint=f"the limit is {MAX_SESSIONS_PER_USER} per user",
                )
            session = Session(secrets.token_hex(8), user_id, container_id, tuple(command), close=close)
            self._sessions[session.key] = session
        return session

    def release(self, key: str) -> None:
        """Forget a session (idempotent)."""
        with self._lock:
            self._sessions.pop(key, None)

    def sessions(self, *, user_id: int | None = None, container_id: str | None = None) -> list[Session]:
        with self._lock:
            return [
                s
                for s in self._sessions.values()
                if (user_id is None or s.user_id == user_id)
                and (container_id is None or s.container_id == container_id)
            ]

    def close_for_user(self, user_id: int, reason: str = "logged out") -> int:
        """Ask every session of a user to close (logout, role change); return how many were asked."""
        return self._close(self.sessions(user_id=user_id), reason)

    def close_for_container(self, container_id: str, reason: str = "container removed") -> int:
        """Ask every session into a container to close; return how many were asked."""
        return self._close(self.sessions(container_id=container_id), reason)

    @staticmethod
    def _close(sessions: list[Session], reason: str) -> int:
        for session in sessions:
            if session.close is not None:
                session.close(reason)
        return len(sessions)


def command_for(choice: str, custom: str = "") -> tuple[str, ...]:
    """Map the chooser's value to a command: a known shell, or the Custom field split like a shell
    line (quotes respected). Raise InvalidArgument for an unknown choice or an unusable custom line."""
    choice = (choice or "").strip() or DEFAULT_COMMAND[0]
    if choice == CUSTOM:
        return parse_custom(custom)
    command = COMMANDS.get(choice)
    if command is None:
        raise InvalidArgument(f"{choice!r} is not one of the offered shells; choose Custom to type a command")
    return command


def parse_custom(line: str) -> tuple[str, ...]:
    """Split a typed command line into arguments; InvalidArgument when empty, unbalanced or too long."""
    line = (line or "").strip()
    if not line:
        raise InvalidArgument("type the command to run (for example: top, or python3 -i)")
    if len(line) > MAX_COMMAND or "\x00" in line:
        raise InvalidArgument(f"the command must be at most {MAX_COMMAND} characters, without NUL bytes")
    try:
        args = tuple(shlex.split(line))
    except ValueError as exc:
        raise InvalidArgument(f"cannot read the command: {exc} (check its quotes)") from None
    if not args or len(args) > MAX_ARGS:
        raise InvalidArgument(f"the command must have 1 to {MAX_ARGS} words")
    return args


def start_failure(exc: Exception, command: tuple[str, ...], container_name: str) -> str:
    """One readable sentence for a command that could not start (never runc's log line)."""
    shown = shlex.join(command) if command else "the command"
    if isinstance(exc, CommandNotRunnable):
        if exc.exit_status == 127:
            return (
                f"{command[0] if command else shown} was not found in {container_name}. "
                "Choose another shell or type a command that exists in the container."
            )
        return f"{command[0] if command else shown} cannot be executed in {container_name} (not a program, or not allowed)."
    return f"Could not start {shown} in {container_name}: {exc}"


def tab_context(container: Any) -> dict[str, Any]:
    """What the terminal tab offers: the shells this container has, and Attach when it runs with -t."""
    from engine.services import shells

    offered = shells.available(container, tuple(COMMANDS)) if container.state == "running" else []
    return {"commands": offered, "can_attach": bool(container.config.get("Tty"))}


manager = TerminalManager()
