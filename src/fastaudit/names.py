"""Names are data: the one escaping of file, member and library names (and of messages that carry
them) before they reach a terminal, a log or a report.

A wheel's member names, a soname inside an ELF file, a file name in a mirror: anyone who uploads a
wheel chooses them. Printed verbatim, a newline forges a log line and an ANSI escape rewrites the
terminal. JSON output stays lossless (json.dumps escapes what it must); everything printed as text
goes through `printable`.
"""
from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, kept by surrogateescape: show the byte
        return f"\\x{code - 0xDC00:02x}"
    if char in _NAMED:
        return _NAMED[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with every character Python does not call printable escaped: C0 and C1 controls
    (newline and ESC included), DEL, format characters such as the bidirectional overrides that
    reorder what a reader sees, line and paragraph separators, and undecodable bytes (`\\xff`).
    Printable text, the common case, is returned as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)
