"""Text that came from users (file and folder names, class names, checkpoint metadata) made safe to
print on a terminal: control characters (ANSI escape sequences, carriage returns, ...), bidirectional
overrides and the lone surrogates that stand for undecodable bytes in file names are shown as
escapes (``\\x1b``, ``\\r``, ``\\u202e``, ``\\xff``) instead of being sent to the terminal.
"""

from __future__ import annotations

import io
import re

# C0 and C1 controls and DEL, bidi embeddings/overrides/isolates, line/paragraph separators, BOM.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                     "\u2066-\u2069\ufeff\ud800-\udfff]")
_UNSAFE_NL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                        "\u2066-\u2069\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    c = m.group(0)
    if c in _NAMED:
        return _NAMED[c]
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
        return f"\\x{o - 0xDC00:02x}"
    if o <= 0xFF:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}"


def printable(text, *, newlines: bool = False) -> str:
    """``text`` with every character a terminal would act on escaped. ``newlines=True`` keeps
    newlines and tabs (for multi-line text the program itself composed)."""
    s = text if isinstance(text, str) else str(text)
    return (_UNSAFE if newlines else _UNSAFE_NL).sub(_escape, s)


class EscapingStream(io.TextIOBase):
    """A text stream that escapes control characters (except newline and tab) before writing to
    ``stream``; ``raw`` is the stream itself (for the program's own carriage returns)."""

    def __init__(self, stream):
        super().__init__()
        self.raw = stream

    def write(self, s) -> int:
        text = printable(s, newlines=True)
        try:
            self.raw.write(text)
        except UnicodeEncodeError:
            enc = getattr(self.raw, "encoding", None) or "ascii"
            self.raw.write(text.encode(enc, "backslashreplace").decode(enc, "replace"))
        return len(s)

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        try:
            return bool(self.raw.isatty())
        except Exception:  # noqa: BLE001
            return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):
        return getattr(self.raw, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.raw.fileno()


def raw_stream(stream):
    """The stream under an :class:`EscapingStream` (or ``stream`` itself)."""
    return getattr(stream, "raw", stream) if isinstance(stream, EscapingStream) else stream
