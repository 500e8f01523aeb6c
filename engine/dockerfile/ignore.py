""".dockerignore rules with Docker's semantics.

Pure. Each line is a pattern (comments `#` and blank lines skipped), cleaned like a path with any
leading `/` dropped. `*` and `?` do not cross `/`, `**` matches any number of directories, `[…]` is a
class and `\\` escapes. A pattern also matches everything below a directory it matches. A leading `!`
makes an exception that re-includes; the last pattern that matches a path decides.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from engine.errors import InvalidArgument

MAX_PATTERNS = 10_000


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # a `!` exception
    regex: re.Pattern[str]


def parse(text: str) -> list[Pattern]:
    """Parse a .dockerignore file; raise InvalidArgument for a malformed pattern."""
    patterns: list[Pattern] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
            if not line:
                raise InvalidArgument('.dockerignore: illegal exclusion pattern: "!"')
        cleaned = posixpath.normpath(line)
        if len(cleaned) > 1 and cleaned.startswith("/"):
            cleaned = cleaned.lstrip("/")
        if cleaned == ".":
            cleaned = ""  # "." alone would exclude the whole context; Docker ignores it too
            continue
        patterns.append(Pattern(cleaned, exclusion, compile_pattern(cleaned)))
        if len(patterns) > MAX_PATTERNS:
            raise InvalidArgument(f".dockerignore has more than {MAX_PATTERNS} patterns")
    return patterns


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Translate one cleaned pattern into an anchored regular expression."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 2
                if i >= len(pattern):
                    out.append(".*")
                elif pattern[i] == "/":
                    out.append("(.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            if i >= len(pattern):
                raise InvalidArgument(f".dockerignore: pattern {pattern!r} ends with an escape")
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end < 0:
                raise InvalidArgument(f".dockerignore: unterminated [ in pattern {pattern!r}")
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise InvalidArgument(f".dockerignore: invalid pattern {pattern!r}: {exc}") from None


class Matcher:
    """Decides whether a context path (relative, `/`-separated) is excluded."""

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns
        self.has_exceptions = any(p.exclusion for p in patterns)

    def excluded(self, path: str) -> bool:
        """True when the last pattern matching `path` or one of its parent directories excludes it."""
        path = path.strip("/")
        if not path or not self.patterns:
            return False
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for pattern in self.patterns:
            if pattern.exclusion != result:
                continue  # this pattern could not change the answer
            if any(pattern.regex.match(prefix) for prefix in prefixes):
                result = not pattern.exclusion
        return result

    def may_include_below(self, directory: str) -> bool:
        """Whether an excluded directory must still be walked because an exception may re-include
        something inside it."""
        return self.has_exceptions


def matcher(text: str | None) -> Matcher:
    return Matcher(parse(text or ""))
