"""ANSI escape sequences in log lines → text segments with whitelisted CSS classes (pure).

A log line is attacker-controlled text. It never reaches the browser as HTML: this module turns it
into `(text, classes)` segments and the client builds `<span class="…">` elements with textContent.
Only SGR sequences (`ESC [ … m`) are understood, and only these attributes survive: bold, dim,
italic, underline, strike-through, and the 16 standard foreground and background colours (256-colour
and 24-bit colours are mapped to the nearest of those 16). Every other escape sequence — cursor
movement, OSC 52 clipboard writes, OSC 8 hyperlinks, window titles, device queries — and every other
control character (except tab) is dropped. Classes are `ansi-b`, `ansi-d`, `ansi-i`, `ansi-u`,
`ansi-s`, `ansi-f0`…`ansi-f15` and `ansi-g0`…`ansi-g15` (static/css/containers.css styles them).
"""

from __future__ import annotations

import re
from typing import Any

# CSI (ESC [ or the C1 byte 0x9b) … final byte; OSC (ESC ] or 0x9d) … BEL or ST, or unterminated to
# the end of the line; DCS/SOS/PM/APC strings likewise; then any other two-character escape.
_ESCAPE = re.compile(
    r"(?:\x1b\[|\x9b)(?P<params>[0-?]*)(?P<inter>[ -/]*)(?P<final>[@-~])"
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|(?=\x1b)|$)"
    r"|\x1b[ -/]*[0-~]?"
)
# Control characters that are not escapes: C0 except tab, DEL, and the C1 range.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

# A line longer than this is cut for display (the download keeps it whole).
MAX_DISPLAY = 16_384

# xterm's 256-colour cube levels, for mapping extended colours to the 16 basic ones.
_BASIC_RGB = (
    (0, 0, 0),
    (205, 0, 0),
    (0, 205, 0),
    (205, 205, 0),
    (0, 0, 238),
    (205, 0, 205),
    (0, 205, 205),
    (229, 229, 229),
    (127, 127, 127),
    (255, 0, 0),
    (0, 255, 0),
    (255, 255, 0),
    (92, 92, 255),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 255),
)
_CUBE = (0, 95, 135, 175, 215, 255)


def nearest_basic(red: int, green: int, blue: int) -> int:
    """Return the index (0–15) of the basic ANSI colour closest to an RGB value."""
    best, best_distance = 0, None
    for index, (r, g, b) in enumerate(_BASIC_RGB):
        distance = (r - red) ** 2 + (g - green) ** 2 + (b - blue) ** 2
        if best_distance is None or distance < best_distance:
            best, best_distance = index, distance
    return best


def _from_256(n: int) -> int | None:
    if 0 <= n < 16:
        return n
    if 16 <= n < 232:
        n -= 16
        return nearest_basic(_CUBE[n // 36], _CUBE[(n // 6) % 6], _CUBE[n % 6])
    if 232 <= n < 256:
        level = 8 + (n - 232) * 10
        return nearest_basic(level, level, level)
    return None


class _Style:
    """The SGR state while scanning one line."""

    __slots__ = ("bold", "dim", "italic", "underline", "strike", "fg", "bg")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.bold = self.dim = self.italic = self.underline = self.strike = False
        self.fg: int | None = None
        self.bg: int | None = None

    def classes(self) -> str:
        names = []
        if self.bold:
            names.append("ansi-b")
        if self.dim:
            names.append("ansi-d")
        if self.italic:
            names.append("ansi-i")
        if self.underline:
            names.append("ansi-u")
        if self.strike:
            names.append("ansi-s")
        if self.fg is not None:
            names.append(f"ansi-f{self.fg}")
        if self.bg is not None:
            names.append(f"ansi-g{self.bg}")
        return " ".join(names)

    def apply(self, params: str) -> None:
        """Apply one SGR parameter list ("1;31", "38;5;208", "" = reset). Unknown codes are ignored."""
        codes: list[int] = []
        for part in params.replace(":", ";").split(";"):
            codes.append(int(part) if part.isdigit() and len(part) < 6 else 0)
        i = 0
        while i < len(codes):
            code = codes[i]
            i += 1
            if code == 0:
                self.reset()
            elif code == 1:
                self.bold = True
            elif code == 2:
                self.dim = True
            elif code == 3:
                self.italic = True
            elif code == 4:
                self.underline = True
            elif code == 9:
                self.strike = True
            elif code == 22:
                self.bold = self.dim = False
            elif code == 23:
                self.italic = False
            elif code == 24:
                self.underline = False
            elif code == 29:
                self.strike = False
            elif 30 <= code <= 37:
                self.fg = code - 30
            elif 90 <= code <= 97:
                self.fg = code - 90 + 8
            elif code == 39:
                self.fg = None
            elif 40 <= code <= 47:
                self.bg = code - 40
            elif 100 <= code <= 107:
                self.bg = code - 100 + 8
            elif code == 49:
                self.bg = None
            elif code in (38, 48) and i < len(codes):
                colour, i = _extended(codes, i)
                if code == 38:
                    self.fg = colour if colour is not None else self.fg
                else:
                    self.bg = colour if colour is not None else self.bg


def _extended(codes: list[int], i: int) -> tuple[int | None, int]:
    """Read `5;n` or `2;r;g;b` after 38/48; return the basic colour (or None) and the next index."""
    kind = codes[i]
    if kind == 5 and i + 1 < len(codes):
        return _from_256(codes[i + 1]), i + 2
    if kind == 2 and i + 3 < len(codes):
        r, g, b = (min(max(v, 0), 255) for v in codes[i + 1 : i + 4])
        return nearest_basic(r, g, b), i + 4
    return None, len(codes)


def _last_carriage_return(text: str) -> str:
    """A terminal shows what follows the last carriage return (progress bars redraw with \\r)."""
    if "\r" not in text:
        return text
    tail = text.rsplit("\r", 1)[1]
    return tail if tail else text.replace("\r", "")


def segments(text: str) -> list[tuple[str, str]]:
    """Split `text` into (text, classes) segments; classes is "" for unstyled text.

    Adjacent segments with the same classes are merged; empty segments are dropped. The text of
    every segment is free of escape sequences and control characters (tabs are kept).
    """
    text = _last_carriage_return(text)
    out: list[tuple[str, str]] = []
    style = _Style()
    position = 0

    def emit(piece: str) -> None:
        piece = _CONTROL.sub("", piece)
        if not piece:
            return
        classes = style.classes()
        if out and out[-1][1] == classes:
            out[-1] = (out[-1][0] + piece, classes)
        else:
            out.append((piece, classes))

    for match in _ESCAPE.finditer(text):
        emit(text[position : match.start()])
        position = match.end()
        if match.group("final") == "m" and not match.group("inter"):
            style.apply(match.group("params") or "")
    emit(text[position:])
    return out


def payload(text: str) -> str | list[list[str]]:
    """The form a log line takes in a websocket frame: the plain string when it needs no styling,
    else a list of [text, classes] pairs. Lines longer than MAX_DISPLAY are cut with a marker.
    """
    cut = ""
    if len(text) > MAX_DISPLAY:
        cut = f" … [{len(text) - MAX_DISPLAY} more characters; download the log for all]"
        text = text[:MAX_DISPLAY]
    # isprintable() is a fast C check; it is False for every escape and control character (and
    # for some harmless ones such as tab, which then take the slow path and come out the same).
    if text.isprintable() or ("\x1b" not in text and not _CONTROL.search(text)):
        return text + cut
    parts: list[Any] = [[piece, classes] for piece, classes in segments(text)]
    if cut:
        parts.append([cut, "ansi-d"])
    if len(parts) == 1 and parts[0][1] == "":
        return str(parts[0][0])
    if not parts:
        return ""
    return parts


def plain(text: str) -> str:
    """The text of a line with every escape sequence and control character removed."""
    return "".join(piece for piece, _ in segments(text))
