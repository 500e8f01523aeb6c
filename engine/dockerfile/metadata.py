"""Instructions that change only the image config: ENV, LABEL, WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE,
VOLUME, STOPSIGNAL, SHELL, HEALTHCHECK, ONBUILD.

Pure: a config dict, an instruction and the variables in effect go in; a new config dict comes out.
Variables are expanded here (Docker expands them for ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME and
STOPSIGNAL), then the change is applied through engine.image.changes, the same code as `commit -c`
and `import -c`, so the two never disagree about what `ENV A=b` means.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Mapping
from typing import Any

from engine import goduration
from engine.dockerfile import words
from engine.dockerfile.parser import Instruction
from engine.errors import DockerfileError, InvalidArgument
from engine.image import changes

DEFAULT_SHELL = ("/bin/sh", "-c")
METADATA = frozenset(
    {"ENV", "LABEL", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "STOPSIGNAL", "SHELL"}
    | {"HEALTHCHECK", "ONBUILD", "MAINTAINER"}
)
MAX_LABELS = 1000


def env_of(config: dict[str, Any]) -> dict[str, str]:
    """The config's Env list as a dict (later entries win)."""
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def shell_of(config: dict[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def command(instr: Instruction, config: dict[str, Any]) -> list[str]:
    """The argv of RUN/CMD/ENTRYPOINT: the exec form as written, or SHELL + the text."""
    if instr.exec_form is not None:
        return list(instr.exec_form)
    return [*shell_of(config), instr.args]


def apply(
    instr: Instruction, config: dict[str, Any], variables: Mapping[str, str], *, escape: str = "\\"
) -> dict[str, Any]:
    """Return a new config with `instr` applied; raise DockerfileError (with the line) if it is invalid."""
    try:
        return _apply(instr, config, variables, escape)
    except DockerfileError:
        raise
    except InvalidArgument as exc:
        raise DockerfileError(exc.message, line=instr.line, hint=exc.hint) from None


def _apply(instr: Instruction, config: dict[str, Any], env: Mapping[str, str], escape: str) -> dict[str, Any]:
    kw, line = instr.keyword, instr.line
    if kw in ("ENV", "LABEL"):
        pairs = words.parse_pairs(instr.args, env, keyword=kw, escape=escape, line=line)
        change = " ".join(f"{shlex.quote(k)}={shlex.quote(v)}" for k, v in pairs)
        out = changes.apply_changes(config, [f"{kw} {change}"])
        if len(out.get("Labels") or {}) > MAX_LABELS:
            raise DockerfileError(f"more than {MAX_LABELS} labels", line=line)
        return out
    if kw == "WORKDIR":
        path = words.expand(instr.args, env, escape=escape, line=line)
        base = config.get("WorkingDir") or "/"
        return changes.apply_changes(config, [f"WORKDIR {posixpath.normpath(posixpath.join(base, path))}"])
    if kw in ("USER", "STOPSIGNAL"):
        value = words.expand(instr.args, env, escape=escape, line=line).strip()
        if not value:
            raise DockerfileError(f"{kw} requires an argument", line=line)
        return changes.apply_changes(config, [f"{kw} {value}"])
    if kw in ("CMD", "ENTRYPOINT"):
        argv = command(instr, config) if instr.args else []
        out = changes.apply_changes(config, [f"{kw} {json.dumps(argv)}"]) if argv else dict(config)
        if not argv:
            out["Cmd" if kw == "CMD" else "Entrypoint"] = None
        return out
    if kw == "EXPOSE":
        ports = words.split_words(instr.args, env, escape=escape, line=line)
        return changes.apply_changes(config, [f"EXPOSE {' '.join(ports)}"])
    if kw == "VOLUME":
        if instr.exec_form is not None:
            paths = [words.expand(p, env, escape=escape, line=line) for p in instr.exec_form]
        else:
            paths = words.split_words(instr.args, env, escape=escape, line=line)
        if not paths or any(not p.strip() for p in paths):
            raise DockerfileError("VOLUME specified can not be an empty string", line=line)
        return changes.apply_changes(config, [f"VOLUME {json.dumps(paths)}"])
    if kw == "ONBUILD":
        return changes.apply_changes(config, [f"ONBUILD {instr.args}"])
    if kw == "SHELL":
        out = dict(config)
        out["Shell"] = list(instr.exec_form or ())
        return out
    if kw == "HEALTHCHECK":
        out = dict(config)
        out["Healthcheck"] = healthcheck(instr)
        return out
    if kw == "MAINTAINER":
        return dict(config)  # recorded as the image author by the builder
    raise DockerfileError(f"{kw} does not change the image config", line=line)


def healthcheck(instr: Instruction) -> dict[str, Any]:
    """Docker's Healthcheck object from `HEALTHCHECK [--interval=…] CMD …` or `HEALTHCHECK NONE`."""
    line = instr.line
    kind, _, rest = instr.args.partition(" ")
    kind = kind.upper()
    if kind == "NONE":
        if rest.strip() or instr.flags:
            raise DockerfileError("HEALTHCHECK NONE takes no other arguments", line=line)
        return {"Test": ["NONE"]}
    if kind != "CMD" or not rest.strip():
        raise DockerfileError("HEALTHCHECK must be NONE or CMD followed by a command", line=line)
    rest = rest.strip()
    try:
        exec_form = json.loads(rest) if rest.startswith("[") else None
    except ValueError:
        exec_form = None
    if isinstance(exec_form, list) and exec_form and all(isinstance(v, str) for v in exec_form):
        test = ["CMD", *exec_form]
    else:
        test = ["CMD-SHELL", rest]
    out: dict[str, Any] = {"Test": test}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        value = instr.flag(flag)
        if value is not None:
            out[key] = parse_duration(value, flag, line)
    retries = instr.flag("retries")
    if retries is not None:
        if not retries.isdigit() or int(retries) < 1:
            raise DockerfileError(f"--retries must be at least 1, got {retries!r}", line=line)
        out["Retries"] = int(retries)
    return out


def parse_duration(value: str, flag: str, line: int) -> int:
    """A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds (engine.goduration); 0 is allowed, a
    negative or non-zero value under 1 ms is not. Raise DockerfileError naming the flag and the line."""
    try:
        return goduration.parse(value, f"--{flag}")
    except InvalidArgument as exc:
        raise DockerfileError(str(exc), line=line) from None
