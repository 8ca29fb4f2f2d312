"""Text from outside, printed to a terminal as text.

A halt reason comes from an operator's ``--reason``, a Telegram message or an exception;
an event's payload from the node. Printed raw, an escape sequence in it (``\\x1b[2J``,
a hyperlink, a title change) is carried out by the terminal. ``printable`` shows every
character that is not printable as its escape instead: ``\\x1b``, ``\\n``, ``\\u202e``.
"""

from __future__ import annotations


def printable(text: str) -> str:
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def printable_lines(text: str) -> str:
    """``printable`` line by line: the newlines that separate them stay."""
    return "\n".join(printable(line) for line in text.split("\n"))


def _escape(c: str) -> str:
    code = ord(c)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )
