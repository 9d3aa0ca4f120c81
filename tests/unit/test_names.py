"""fastaudit.names.printable, and the Markdown report's cells that use it."""
from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastaudit.names import printable
from fastaudit.report.markdown import _cell, _Code


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain-1.0-py3-none-any.whl", "plain-1.0-py3-none-any.whl"),
    ("caf\u00e9 \u6f22\u5b57 \U0001f642", "caf\u00e9 \u6f22\u5b57 \U0001f642"),  # printable Unicode stays
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),
    ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),  # NUL, DEL, C1 NEL and CSI
    ("abc\u202edcba.exe", "abc\\u202edcba.exe"),  # a right-to-left override reorders what is read
    ("line\u2028separator\u200b", "line\\u2028separator\\u200b"),
    ("\U000e0041tag", "\\U000e0041tag"),  # an invisible tag character
    (os.fsdecode(b"bad\xff\xfe.whl"), "bad\\xff\\xfe.whl"),  # undecodable bytes as the bytes
])
def test_printable_escapes_what_a_terminal_would_act_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown


@given(st.text())
def test_printable_output_is_always_one_printable_line(text: str) -> None:
    out = printable(text)
    assert out.isprintable()
    assert text.isprintable() == (out == text)


@pytest.mark.parametrize(("value", "markdown"), [
    ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
    ("a|b", "a\\|b"),
    ("x\n| forged | row |", "x\\n\\| forged \\| row \\|"),
    (_Code("w.whl"), "`w.whl`"),
    (_Code("<b>w</b>.whl"), "`<b>w</b>.whl`"),  # inert inside a code span, and shown as it is
    (_Code("a`<img src=x>`b.whl"), "``a`<img src=x>`b.whl``"),  # a backtick cannot close the span
    (_Code("``x"), "``` ``x ```"),
])
def test_markdown_cells_render_names_as_text(value: str, markdown: str) -> None:
    assert _cell(value) == markdown
