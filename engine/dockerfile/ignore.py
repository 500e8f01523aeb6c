""".dockerignore rules with Docker's semantics.

Pure. Each line is a pattern (comments `#` and blank lines skipped), cleaned like a path with any
leading `/` dropped. `*` and `?` do not cross `/`, `**` matches any number of directories, `[…]` is a
class and `\\` escapes. A pattern also matches everything below a directory it matches. A leading `!`
makes an exception that re-includes; the last pattern that matches a path decides.

Patterns run as small automata (`Glob`), not backtracking regular expressions: matching costs at
most len(path) × len(pattern) steps whatever the pattern (`*a*a*a…b` once spun a build for minutes).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from engine.errors import InvalidArgument

# Bounds on a hostile .dockerignore (the file itself is capped by context.MAX_DOCKERIGNORE): the
# matching work for one path is at most MAX_PATTERNS × MAX_PATTERN_LENGTH × len(path) steps.
MAX_PATTERNS = 10_000
MAX_PATTERN_LENGTH = 1024
_MAX_CACHED_STEPS = 4096  # remembered automaton steps per pattern

_LIT, _ONE, _CLASS, _STAR, _ALL, _DIRS, _DIRS_INNER = (
    "lit",
    "one",
    "class",
    "star",
    "all",
    "dirs",
    "dirs-inner",
)


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # a `!` exception
    glob: Glob


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


def compile_pattern(pattern: str) -> Glob:
    """Translate one cleaned pattern into a Glob; raise InvalidArgument for a malformed one."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidArgument(f".dockerignore: a pattern is longer than {MAX_PATTERN_LENGTH} characters")
    tokens: list[tuple[str, object]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 2
                while pattern[i : i + 1] == "*":
                    i += 1  # `***` is `**`
                if i < len(pattern) and pattern[i] == "/":
                    tokens += [(_DIRS, None), (_DIRS_INNER, None)]
                    i += 1
                else:
                    tokens.append((_ALL, None))
                continue
            tokens.append((_STAR, None))
        elif ch == "?":
            tokens.append((_ONE, None))
        elif ch == "\\":
            i += 1
            if i >= len(pattern):
                raise InvalidArgument(f".dockerignore: pattern {pattern!r} ends with an escape")
            tokens.append((_LIT, pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end < 0:
                raise InvalidArgument(f".dockerignore: unterminated [ in pattern {pattern!r}")
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            if body in ("", "^"):
                raise InvalidArgument(f".dockerignore: empty [] in pattern {pattern!r}")
            try:
                # One character against one class: the regex engine cannot backtrack here.
                tokens.append((_CLASS, re.compile("[" + body.replace("\\", "\\\\") + "]")))
            except re.error as exc:
                raise InvalidArgument(f".dockerignore: invalid pattern {pattern!r}: {exc}") from None
            i = end
        else:
            tokens.append((_LIT, ch))
        i += 1
    return Glob(tuple(tokens))


class Glob:
    """One pattern as a small automaton, run over a path one character at a time.

    Backtracking regular expressions take exponential time on patterns such as `*a*a*a*a*b`
    (a build spun for minutes); simulating the automaton holds the set of positions reached
    so far, so a match costs at most len(path) × len(pattern) steps, and steps already taken
    for a set of positions are remembered, which makes the common case one lookup a character.
    """

    def __init__(self, tokens: tuple[tuple[str, object], ...]) -> None:
        self.tokens = tokens
        self.accept = len(tokens)
        self.start = self._closure({0})
        self._steps: dict[tuple[frozenset[int], str], frozenset[int]] = {}

    def match_prefixes(self, path: str) -> bool:
        """True if the pattern matches `path` or one of its parent directories."""
        states = self.start
        for ch in path:
            if ch == "/" and self.accept in states:
                return True
            key = (states, ch)
            nxt = self._steps.get(key)
            if nxt is None:
                nxt = self._step(states, ch)
                if len(self._steps) >= _MAX_CACHED_STEPS:
                    self._steps.clear()  # bounded memory; correctness does not depend on it
                self._steps[key] = nxt
            if not nxt:
                return False
            states = nxt
        return self.accept in states

    def _step(self, states: frozenset[int], ch: str) -> frozenset[int]:
        out: set[int] = set()
        for i in states:
            if i == self.accept:
                continue
            kind, arg = self.tokens[i]
            if kind == _LIT:
                if ch == arg:
                    out.add(i + 1)
            elif kind == _ONE:
                if ch != "/":
                    out.add(i + 1)
            elif kind == _CLASS:
                if arg.fullmatch(ch):  # type: ignore[attr-defined]
                    out.add(i + 1)
            elif kind == _STAR:
                if ch != "/":
                    out.add(i)
            elif kind == _ALL:
                if ch != "\n":  # as the regex `.` this replaced
                    out.add(i)
            elif kind == _DIRS_INNER and ch != "\n":
                out.add(i)
                if ch == "/":
                    out.add(i + 1)
        return self._closure(out)

    def _closure(self, states: set[int]) -> frozenset[int]:
        """Add the positions reachable without reading a character (skipping empty stars)."""
        todo = list(states)
        while todo:
            i = todo.pop()
            if i == self.accept:
                continue
            kind = self.tokens[i][0]
            if kind in (_STAR, _ALL):
                nxt = [i + 1]
            elif kind == _DIRS:
                nxt = [i + 1, i + 2]  # into `(.*/)` or past it
            else:
                continue
            for j in nxt:
                if j not in states:
                    states.add(j)
                    todo.append(j)
        return frozenset(states)


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
        result = False
        for pattern in self.patterns:
            if pattern.exclusion != result:
                continue  # this pattern could not change the answer
            if pattern.glob.match_prefixes(path):
                result = not pattern.exclusion
        return result

    def may_include_below(self, directory: str) -> bool:
        """Whether an excluded directory must still be walked because an exception may re-include
        something inside it."""
        return self.has_exceptions


def matcher(text: str | None) -> Matcher:
    return Matcher(parse(text or ""))
