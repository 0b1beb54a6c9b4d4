"""Matching a query's words with the text read in frames (OCR), tolerating OCR mistakes and partial words.

Frames' text is searched in two steps: the catalog's trigram index (SQLite FTS5, ``tokenize='trigram'``)
finds candidate frames sharing trigrams with the query's words (``candidates_query``), then each candidate
is scored here (``score``): every query word of three or more characters (common English function words
left out) is looked for in each line. Found as it is (also inside a longer word, or across a space OCR put
in), it scores 1; a word of five or more characters may also be found with OCR's mistakes, scoring its best
partial alignment (rapidfuzz's ``partial_ratio``: "parking" in "NO PARKINQ" is 0.86); a shorter word must be
found exactly ("dog" is not "don"). The quality is the share of the query's word characters found, each
word counted by its score: a frame counts as a text match only at ``min_quality`` or above, so a few shared
trigrams, which almost any query has with some text, do not count, nor does one word of a long description.

Text is compared after ``normalise``: Unicode compatibility forms, case folded, accents removed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz

MIN_WORD_CHARS = 3  # a trigram index cannot look up shorter words; "no" of "no parking" rides along
MIN_FUZZY_CHARS = 5  # shorter words match only exactly: one letter off is another word
# Words a description is made of rather than words one reads on a sign (English: the default model's language).
FUNCTION_WORDS = frozenset(
    "the and are was were for from with without into onto over under near this that these those its his her "
    "their our your you they them him she has have had who what where which while being been some any".split())
MAX_QUERY_WORDS = 16
WORD = re.compile(r"\w+(?:[.,:/'-]\w+)*")  # "42.17", "t-shirt" and "o'neill" are one word each


def normalise(text: str) -> str:
    """Case folded, accents removed, compatibility forms unified: what is indexed and compared."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def query_words(query: str) -> list[str]:
    """The words of a query that text is matched with: normalised, at least MIN_WORD_CHARS long, each once."""
    words = [w for w in WORD.findall(normalise(query)) if len(w) >= MIN_WORD_CHARS and w not in FUNCTION_WORDS]
    return list(dict.fromkeys(words))[:MAX_QUERY_WORDS]


def candidates_query(words: list[str]) -> str | None:
    """An FTS5 MATCH expression finding frames that share a trigram with any word; None without words."""
    trigrams = dict.fromkeys(w[i:i + 3] for w in words for i in range(len(w) - 2))
    if not trigrams:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in trigrams)


@dataclass(frozen=True)
class WordHit:
    word: str  # the query's word (normalised)
    line: int  # the index of the line it was found in
    score: float  # 0..1


@dataclass(frozen=True)
class TextMatch:
    quality: float  # 0..1: the query's words found, weighted by length
    hits: list[WordHit]  # the words found well enough to show (score >= min_quality), best line each

    @property
    def lines(self) -> list[int]:
        return sorted({hit.line for hit in self.hits})

    @property
    def words(self) -> list[str]:
        return [hit.word for hit in self.hits]


def score(words: list[str], lines: list[str], min_quality: float) -> TextMatch | None:
    """How well a frame's ``lines`` (as read) hold the query's ``words`` (query_words); None below
    ``min_quality``."""
    if not words or not lines:
        return None
    normalised = [normalise(line) for line in lines]
    compact = [line.replace(" ", "") for line in normalised]  # OCR often drops or adds spaces
    total = sum(len(w) for w in words)
    quality, hits = 0.0, []
    for word in words:
        best, where = 0.0, 0
        for index, (line, joined) in enumerate(zip(normalised, compact)):
            if word in line or word in joined:
                best, where = 1.0, index
                break
            if len(word) >= MIN_FUZZY_CHARS:
                found = max(fuzz.partial_ratio(word, line), fuzz.partial_ratio(word, joined)) / 100
                if found > best:
                    best, where = found, index
        quality += best * len(word) / total
        if best >= min_quality:
            hits.append(WordHit(word, where, best))
    if quality < min_quality:
        return None
    return TextMatch(quality, hits)
