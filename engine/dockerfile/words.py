"""Dockerfile words: variable substitution, quote removal and word splitting, as Docker's shell lexer.

Pure. `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}` and
`${VAR?msg}` are expanded outside single quotes; the escape character (backslash, or backtick after
`# escape=`) makes the next character literal. Docker applies this to ADD, COPY, ENV, EXPOSE, FROM,
LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and ARG, never to RUN, CMD or ENTRYPOINT (the shell does that).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.errors import DockerfileError

_NAME_START = re.compile(r"[A-Za-z_]")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")
MAX_EXPANSION = 1 << 20  # a self-referencing chain of defaults must not grow without bound


def expand(text: str, env: Mapping[str, str], *, escape: str = "\\", line: int | None = None) -> str:
    """Expand variables and remove quotes in `text`, keeping it one word (Docker's ProcessWord)."""
    return "".join(_Lexer(text, env, escape, line).run(split=False))


def split_words(
    text: str, env: Mapping[str, str], *, escape: str = "\\", line: int | None = None
) -> list[str]:
    """Split `text` on unquoted whitespace, then expand each word (Docker's ProcessWords)."""
    return _Lexer(text, env, escape, line).run(split=True)


def raw_words(text: str, *, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace without expanding or removing quotes (for KEY=VALUE pairs)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    esc = re.escape(escape)
    plain = {
        "": re.compile(rf"[^\s'\"{esc}]+"),
        "'": re.compile(r"[^']+"),
        '"': re.compile(rf'[^"{esc}]+'),
    }
    i = 0
    while i < len(text):
        run = plain[quote].match(text, i)
        if run:
            current.append(run.group())
            i = run.end()
            continue
        ch = text[i]
        if ch == escape and quote != "'" and i + 1 < len(text):
            current.append(ch + text[i + 1])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if quote:
        raise DockerfileError(f"unmatched quote in {text!r}")
    if current:
        words.append("".join(current))
    return words


def parse_pairs(
    text: str, env: Mapping[str, str], *, keyword: str, escape: str = "\\", line: int | None = None
) -> list[tuple[str, str]]:
    """Parse `KEY=VALUE …` (or the legacy `KEY VALUE with spaces`) and expand the values."""
    words = raw_words(text, escape=escape)
    if not words:
        raise DockerfileError(f"{keyword} requires at least one argument", line=line)
    if "=" not in words[0]:
        if keyword == "LABEL" or len(words) < 2:
            raise DockerfileError(f"{keyword} {text!r}: expected KEY=VALUE", line=line)
        key, _, rest = text.strip().partition(" ")
        return [(key, expand(rest.strip(), env, escape=escape, line=line))]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise DockerfileError(f"{keyword} {word!r}: expected KEY=VALUE", line=line)
        pairs.append(
            (expand(key, env, escape=escape, line=line), expand(value, env, escape=escape, line=line))
        )
    return pairs


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, line: int | None) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.line = line
        self.pos = 0
        # Runs of characters with no meaning are taken in one step, so a long word costs one
        # regex match rather than a Python loop turn per character (a 1 MiB LABEL took seconds).
        esc = re.escape(escape)
        self.plain = re.compile(rf"[^\s'\"${esc}]+")
        self.plain_quoted = re.compile(rf'[^"${esc}]+')
        self.plain_operand = re.compile(rf"[^}}'\"${esc}]+")

    def error(self, message: str) -> DockerfileError:
        return DockerfileError(message, line=self.line)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def run(self, *, split: bool) -> list[str]:
        words: list[str] = []
        current: list[str] = []
        started = False  # a quoted empty string is still a word
        while self.pos < len(self.text):
            run = self.plain.match(self.text, self.pos)
            if run:
                current.append(run.group())
                started = True
                self.pos = run.end()
                continue
            ch = self.text[self.pos]
            if split and ch.isspace():
                if current or started:
                    words.append("".join(current))
                current, started = [], False
                self.pos += 1
                continue
            started = True
            if ch == self.escape:
                self.pos += 1
                if self.pos < len(self.text):
                    current.append(self.text[self.pos])
                    self.pos += 1
                else:
                    current.append(ch)
            elif ch == "'":
                current.append(self.single_quoted())
            elif ch == '"':
                current.append(self.double_quoted())
            elif ch == "$":
                current.append(self.variable())
            else:
                current.append(ch)
                self.pos += 1
        if current or started:
            words.append("".join(current))
        if sum(len(w) for w in words) > MAX_EXPANSION:
            raise self.error(f"variable expansion is larger than {MAX_EXPANSION} characters")
        return words if split else ["".join(words)]

    def single_quoted(self) -> str:
        end = self.text.find("'", self.pos + 1)
        if end < 0:
            raise self.error(
                f"unexpected end of statement while looking for matching single-quote in {self.text!r}"
            )
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def double_quoted(self) -> str:
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            run = self.plain_quoted.match(self.text, self.pos)
            if run:
                out.append(run.group())
                self.pos = run.end()
                continue
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == self.escape and self.pos + 1 < len(self.text):
                nxt = self.text[self.pos + 1]
                if nxt in ('"', "$", self.escape):
                    out.append(nxt)
                    self.pos += 2
                    continue
                out.append(ch)
                self.pos += 1
            elif ch == "$":
                out.append(self.variable())
            else:
                out.append(ch)
                self.pos += 1
        raise self.error(
            f"unexpected end of statement while looking for matching double-quote in {self.text!r}"
        )

    def name(self) -> str:
        start = self.pos
        if self.pos < len(self.text) and _NAME_START.match(self.text[self.pos]):
            self.pos += 1
            while self.pos < len(self.text) and _NAME_CHAR.match(self.text[self.pos]):
                self.pos += 1
        return self.text[start : self.pos]

    def variable(self) -> str:
        self.pos += 1  # the $
        if self.peek() == "{":
            return self.braced()
        name = self.name()
        if not name:
            return "$"  # a lone $ (or $1, $@): kept literally, as Docker does
        return self.env.get(name, "")

    def braced(self) -> str:
        self.pos += 1  # the {
        name = self.name()
        if not name:
            raise self.error(f"bad substitution in {self.text!r}: expected a variable name after ${{")
        op = ""
        if self.peek() == ":":
            op = ":"
            self.pos += 1
        if self.peek() in ("-", "+", "?"):
            op += self.peek()
            self.pos += 1
        elif op:
            raise self.error(f"bad substitution in {self.text!r}: unsupported modifier after {name}")
        word = self.operand() if op else ""
        if self.peek() != "}":
            raise self.error(f"bad substitution in {self.text!r}: missing }}")
        self.pos += 1
        value = self.env.get(name)
        if not op:
            return value or ""
        empty_counts = op.startswith(":")
        is_set = value is not None and (value != "" or not empty_counts)
        kind = op[-1]
        if kind == "-":
            return value if is_set else word  # type: ignore[return-value]
        if kind == "+":
            return word if is_set else ""
        if not is_set:
            raise self.error(f"{name}: {word or 'is not set'}")
        return value  # type: ignore[return-value]

    def operand(self) -> str:
        """The word inside ${VAR:-word}: expanded, up to the matching }."""
        out: list[str] = []
        while self.pos < len(self.text) and self.peek() != "}":
            run = self.plain_operand.match(self.text, self.pos)
            if run:
                out.append(run.group())
                self.pos = run.end()
                continue
            ch = self.peek()
            if ch == self.escape and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif ch == "'":
                out.append(self.single_quoted())
            elif ch == '"':
                out.append(self.double_quoted())
            elif ch == "$":
                out.append(self.variable())
            else:
                out.append(ch)
                self.pos += 1
        return "".join(out)
