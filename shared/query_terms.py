"""A search query's terms: the words to look for and the concepts to subtract (``beach -people``).

A minus subtracts the word it starts, or the quoted phrase right after it (``-"red car"``), only at the
start of the query or after a space, and only before a letter or a quote: ``t-shirt``, ``-5 °C`` and
``a - b`` are words to look for. Quotes keep what they hold literal (``"beach -people"`` looks for those
words, minus and all) and are dropped from the text. As in rclip, the query's vector is the words' vector
minus each subtracted concept's, normalised; the text read in pictures (OCR) is matched with the words alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_MINUS_TERMS = 8
TERM = re.compile(r'(?:(?<=\s)|^)-(?:"(?P<minus_phrase>[^"]*)"|(?P<minus_word>[^\W\d_]\S*))|"(?P<quoted>[^"]*)"')


@dataclass(frozen=True)
class QueryTerms:
    text: str  # what to look for: the query without its minus terms and quotes, spaces collapsed
    minus: tuple[str, ...] = ()  # concepts to subtract, each once


def parse_query(query: str) -> QueryTerms:
    """The terms of ``query``; ValueError when nothing is left to look for or too many terms are subtracted."""
    kept, minus, start = [], [], 0
    for found in TERM.finditer(query):
        kept.append(query[start:found.start()])
        start = found.end()
        if found["quoted"] is not None:
            kept.append(found["quoted"])
        elif subtracted := " ".join((found["minus_phrase"] or found["minus_word"] or "").split()):
            minus.append(subtracted)
    kept.append(query[start:])
    text = " ".join("".join(kept).split())
    if not text:
        raise ValueError("the query has nothing to look for besides what it subtracts (-word): add the words "
                         "to find, or quote a word that starts with a minus")
    minus = list(dict.fromkeys(minus))
    if len(minus) > MAX_MINUS_TERMS:
        raise ValueError(f"the query subtracts {len(minus)} terms; at most {MAX_MINUS_TERMS}")
    return QueryTerms(text, tuple(minus))
