"""Text from outside shown by the dashboard as text, not Markdown.

Streamlit renders the strings given to ``st.info``, ``st.error``, ``st.markdown`` and the
like as Markdown (with its own ``:red[...]`` colours, ``:material/...:`` icons and ``$``
maths). A halt reason is written by whoever sent the halt (a Telegram message, an
operator's ``--reason``), an exit line by whatever the session printed last: shown as
Markdown, ``[the backup](https://...)`` becomes a link and ``**`` styling. ``literal``
backslash-escapes every ASCII punctuation character (CommonMark shows an escaped one as
itself) and folds the lines into one.
"""

from __future__ import annotations

import re

PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def literal(text: str) -> str:
    return PUNCTUATION.sub(r"\\\1", " ".join(text.split("\n")))
