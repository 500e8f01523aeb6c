"""The one exception tree of the engine.

Every front end maps these classes in exactly one place: the dashboard to HTTP statuses, the CLI to
exit codes, consumers to close codes. Messages say what was wrong and what to do about it.
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""

    status = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class NotFound(EngineError):
    status = 404


class ImageNotFound(NotFound):
    pass


class ContainerNotFound(NotFound):
    pass


class VolumeNotFound(NotFound):
    pass


class NetworkNotFound(NotFound):
    pass


class JobNotFound(NotFound):
    pass


class Conflict(EngineError):
    status = 409


class AlreadyExists(Conflict):
    pass


class InvalidState(Conflict):
    pass


class InUse(Conflict):
    pass


class InvalidArgument(EngineError):
    status = 400


class BadReference(InvalidArgument):
    pass


class DockerfileError(InvalidArgument):
    def __init__(self, message: str, *, line: int | None = None, hint: str | None = None) -> None:
        if line is not None:
            message = f"Dockerfile line {line}: {message}"
        super().__init__(message, hint=hint)
        self.line = line


class DigestMismatch(InvalidArgument):
    """Content does not hash to the digest it was asked for (a corrupt or substituted blob)."""


class UnsafeArchive(InvalidArgument):
    """An archive or layer tried to escape its directory or exceeded a cap.

    `entry` is the member's name when the message already names it (so callers do not name it twice).
    """

    def __init__(self, message: str, *, hint: str | None = None, entry: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.entry = entry

    @classmethod
    def at(cls, entry: str, reason: str) -> UnsafeArchive:
        """The error for one member: "tar entry 'name': reason"."""
        return cls(f"tar entry {entry!r}: {reason}", entry=entry)


class UnsafeRootfs(InvalidArgument):
    """A container's root file system has a symlink where the runtime mounts or creates something."""


class PermissionDenied(EngineError):
    status = 403


class RegistryError(EngineError):
    status = 502

    def __init__(self, message: str, *, permanent: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.permanent = permanent


class RegistryAuthError(RegistryError):
    status = 401


class RuntimeFailure(EngineError):
    """A runtime tool (runc, conmon, mount, …) failed."""

    status = 500

    def __init__(
        self,
        message: str,
        *,
        argv: list[str] | None = None,
        exit_code: int | None = None,
        stderr: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.argv = argv or []
        self.exit_code = exit_code
        self.stderr = stderr


class CommandNotRunnable(RuntimeFailure):
    """The runtime could not start the container's command; `exit_status` is Docker's for it.

    127: not found; 126: found but not executable. `reason` is the runtime's own words, unframed.
    """

    def __init__(
        self, message: str, *, reason: str, exit_status: int, argv: list[str] | None = None, stderr: str = ""
    ) -> None:
        super().__init__(message, argv=argv, stderr=stderr)
        self.reason = reason
        self.exit_status = exit_status


class Unavailable(EngineError):
    status = 503


class DiskFull(EngineError):
    """Free space under BERTH_ROOT fell below the reserve, or the disk (or the database) is full."""

    status = 507
