"""Parse a Dockerfile into stages of instructions, with the line number of each.

Pure: text in, frozen dataclasses out, DockerfileError (with the line) for anything malformed. Handles
parser directives (`# syntax=`, `# escape=`), line continuations (comments and blank lines inside a
continuation are skipped, as Docker does), instruction flags (`--from=…`), the JSON (exec) form and
multi-stage builds (`FROM … AS name`). Variable substitution happens later, in the builder, because it
depends on the ENV and ARG values in effect at each step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from engine.errors import DockerfileError

MAX_SIZE = 4 * 1024 * 1024  # a Dockerfile larger than this is refused before parsing (A28)
MAX_INSTRUCTIONS = 10_000

# keyword → the flags it accepts (without the leading --)
INSTRUCTIONS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "ARG": frozenset(),
    "ENV": frozenset(),
    "LABEL": frozenset(),
    "WORKDIR": frozenset(),
    "USER": frozenset(),
    "CMD": frozenset(),
    "ENTRYPOINT": frozenset(),
    "EXPOSE": frozenset(),
    "VOLUME": frozenset(),
    "STOPSIGNAL": frozenset(),
    "SHELL": frozenset(),
    "RUN": frozenset(),
    "COPY": frozenset({"from", "chown", "chmod", "link"}),
    "ADD": frozenset({"chown", "chmod", "link"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
    "ONBUILD": frozenset(),
    "MAINTAINER": frozenset(),
}
# Flags Docker (BuildKit) knows but Berth refuses, with the reason a user needs.
_UNSUPPORTED_FLAGS = {
    ("RUN", "mount"): "RUN --mount is not supported",
    ("RUN", "network"): "RUN --network is not supported (RUN uses the default network)",
    ("RUN", "security"): "RUN --security=insecure is not allowed",
    ("ADD", "checksum"): "ADD --checksum is not supported (ADD of URLs is refused)",
    ("ADD", "keep-git-dir"): "ADD of git repositories is not supported",
    ("ADD", "from"): "ADD does not take --from; use COPY --from",
}
_EXEC_FORM = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD"})
_NO_ARGS_OK = frozenset({"CMD", "ENTRYPOINT"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG = re.compile(r"^--([a-z][a-z0-9-]*)(?:=(.*))?$")
STAGE_NAME = re.compile(r"^[a-z][a-z0-9._-]*$")


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str  # upper case
    args: str  # the text after the keyword and its flags
    flags: tuple[tuple[str, str], ...] = ()
    exec_form: tuple[str, ...] | None = None  # the parsed JSON array, when that form was used
    original: str = ""  # the whole instruction as written (continuations joined)

    def flag(self, name: str) -> str | None:
        for key, value in self.flags:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Stage:
    index: int
    base: str  # as written: variables are expanded against the global ARGs when the stage starts
    name: str | None
    line: int
    platform: str | None
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Dockerfile:
    escape: str
    syntax: str | None
    global_args: tuple[Instruction, ...]  # ARGs before the first FROM
    stages: tuple[Stage, ...]

    def find_stage(self, ref: str, before: int | None = None) -> Stage | None:
        """The stage named `ref` (or numbered, `0`, `1`, …) defined before stage index `before`."""
        limit = len(self.stages) if before is None else before
        ref = ref.lower()
        for stage in self.stages[:limit]:
            if stage.name == ref or (ref.isdigit() and int(ref) == stage.index):
                return stage
        return None


def parse(text: str) -> Dockerfile:
    """Parse `text`; raise DockerfileError (with a line number where there is one) if it is invalid."""
    if len(text) > MAX_SIZE:
        raise DockerfileError(f"the Dockerfile is larger than {MAX_SIZE} bytes")
    if "\x00" in text:
        raise DockerfileError("the Dockerfile contains a NUL byte")
    lines = text.removeprefix("\ufeff").splitlines()
    directives, start = _directives(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"invalid escape token {escape!r}: must be ` or \\", line=1)
    instructions = [
        _instruction(number, joined, escape) for number, joined in _logical_lines(lines, start, escape)
    ]
    if len(instructions) > MAX_INSTRUCTIONS:
        raise DockerfileError(f"the Dockerfile has more than {MAX_INSTRUCTIONS} instructions")
    return _stages(instructions, escape, directives.get("syntax"))


def parse_trigger(text: str, line: int, escape: str = "\\") -> Instruction:
    """An ONBUILD trigger recorded in a base image's config, parsed as the instruction it is."""
    instr = _instruction(line, text.strip(), escape)
    if instr.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
        raise DockerfileError(f"{instr.keyword} isn't allowed as an ONBUILD trigger", line=line)
    return instr


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line.strip())
        if not match:
            return found, index
        key = match.group(1).lower()
        if key not in ("syntax", "escape", "check"):
            return found, index  # an unknown directive is a comment, and ends the directives
        if key in found:
            raise DockerfileError(f"only one {key} parser directive can be used", line=index + 1)
        found[key] = match.group(2)
    return found, len(lines)


def _logical_lines(lines: list[str], start: int, escape: str) -> list[tuple[int, str]]:
    """Join continuations; return (first line number, joined text) for each instruction."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    first = 0
    for index in range(start, len(lines)):
        stripped = lines[index].strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and comments, also inside a continuation
        if not parts:
            first = index + 1
        body = lines[index].rstrip()
        if not parts:
            body = body.lstrip()  # a continued line keeps its indentation, as Docker does
        if body.endswith(escape):
            parts.append(body[:-1])
            continue
        parts.append(body)
        out.append((first, "".join(parts).strip()))
        parts = []
    if parts:
        out.append((first, "".join(parts).strip()))  # a continuation at the end of the file
    return out


def _instruction(line: int, text: str, escape: str) -> Instruction:
    keyword, _, rest = text.partition(" ")
    if "\t" in keyword:
        keyword, _, more = keyword.partition("\t")
        rest = f"{more} {rest}" if rest else more
    keyword = keyword.upper()
    rest = rest.strip()
    if keyword not in INSTRUCTIONS:
        raise DockerfileError(f"unknown instruction: {keyword}", line=line)
    flags, rest = _flags(keyword, rest, line)
    exec_form = _json_array(rest) if keyword in _EXEC_FORM else None
    if not rest and keyword not in _NO_ARGS_OK:
        raise DockerfileError(f"{keyword} requires at least one argument", line=line)
    if keyword == "SHELL" and exec_form is None:
        raise DockerfileError(
            'SHELL requires the arguments to be in JSON form, e.g. ["/bin/sh", "-c"]', line=line
        )
    if keyword == "SHELL" and not exec_form:
        raise DockerfileError("SHELL requires at least one argument", line=line)
    if keyword in ("COPY", "ADD") and exec_form is not None and len(exec_form) < 2:
        raise DockerfileError(
            f"{keyword} requires at least two arguments, a source and a destination", line=line
        )
    if keyword == "ONBUILD":
        inner = rest.split(None, 1)[0].upper()
        if inner in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(f"{inner} isn't allowed as an ONBUILD trigger", line=line)
        if inner not in INSTRUCTIONS:
            raise DockerfileError(f"unknown instruction in ONBUILD: {inner}", line=line)
    return Instruction(line, keyword, rest, flags, exec_form, text)


def _flags(keyword: str, rest: str, line: int) -> tuple[tuple[tuple[str, str], ...], str]:
    flags: list[tuple[str, str]] = []
    while rest.startswith("--"):
        word, _, remainder = rest.partition(" ")
        match = _FLAG.match(word)
        if not match:
            raise DockerfileError(f"{keyword}: invalid flag {word!r}", line=line)
        name, value = match.group(1), match.group(2)
        reason = _UNSUPPORTED_FLAGS.get((keyword, name))
        if reason:
            raise DockerfileError(reason, line=line)
        if name not in INSTRUCTIONS[keyword]:
            raise DockerfileError(f"unknown flag: --{name} (for {keyword})", line=line)
        if value is None:
            if name != "link":
                raise DockerfileError(f"{keyword}: flag --{name} needs a value (--{name}=…)", line=line)
            value = "true"
        if any(existing == name for existing, _ in flags):
            raise DockerfileError(f"{keyword}: flag --{name} given twice", line=line)
        flags.append((name, value))
        rest = remainder.lstrip()
    return tuple(flags), rest


def _json_array(rest: str) -> tuple[str, ...] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None  # not JSON: Docker treats it as the shell form
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _stages(instructions: list[Instruction], escape: str, syntax: str | None) -> Dockerfile:
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    current: dict | None = None
    names: set[str] = set()

    def close() -> None:
        if current is not None:
            stages.append(Stage(instructions=tuple(current.pop("body")), **current))

    for instr in instructions:
        if instr.keyword == "FROM":
            close()
            base, name = _from_args(instr)
            if name is not None:
                if name in names:
                    raise DockerfileError(f"duplicate stage name {name!r}", line=instr.line)
                names.add(name)
            current = {
                "index": len(stages),
                "base": base,
                "name": name,
                "line": instr.line,
                "platform": instr.flag("platform"),
                "body": [],
            }
        elif current is None:
            if instr.keyword != "ARG":
                raise DockerfileError(
                    f"{instr.keyword} before the first FROM: only ARG may come before FROM", line=instr.line
                )
            global_args.append(instr)
        else:
            current["body"].append(instr)
    close()
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction", hint="start it with FROM IMAGE")
    return Dockerfile(escape, syntax, tuple(global_args), tuple(stages))


def _from_args(instr: Instruction) -> tuple[str, str | None]:
    words = instr.args.split()
    if len(words) == 1:
        return words[0], None
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not STAGE_NAME.match(name):
            raise DockerfileError(
                f"invalid stage name {words[2]!r}: use letters, digits, '.', '_' and '-', starting with a letter",
                line=instr.line,
            )
        return words[0], name
    raise DockerfileError(
        "FROM requires either one or three arguments: FROM IMAGE [AS NAME]", line=instr.line
    )
