"""Matching a query's words with the text read in frames (OCR), tolerating OCR mistakes and partial words.

Frames' text is searched in two steps: the catalog's trigram index (SQLite FTS5, ``tokenize='trigram'``)
finds candidate frames holding a query word, or half of a longer one, as a substring (``candidates_query``),
then each candidate is scored here (``score``): every query word of three or more characters (common
English function words left out) is looked for in the frame's text. Found as it is (also inside a longer
word, or across a space OCR put in), it scores 1; a word of five or more characters may also be found with OCR's mistakes, scoring its best
partial alignment (rapidfuzz's ``partial_ratio``: "parking" in "NO PARKINQ" is 0.86); a shorter word must be
found exactly ("dog" is not "don"); a word found worse than ``min_quality`` counts nothing. The quality is
the share of the query's word characters found, each word counted by its score: a frame counts as a text match only at ``min_quality`` or above, so a few shared
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
MIN_HALVES_CHARS = 7  # longer words are also looked up by their halves (four letters or more each)
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
    """An FTS5 MATCH expression for frames that may hold any of the words: each word as a substring, and for
    words of MIN_HALVES_CHARS or more each half too (one OCR mistake leaves one half intact: "phar" of
    "pharmacy" in PHARMACIE); None without words. Pieces of four letters or more, never a single trigram:
    almost every text shares a trigram ("ing") with almost any query, and scoring all of them would cost a
    search hundreds of ms at library size."""
    pieces = []
    for word in words:
        pieces.append(word)
        if len(word) >= MIN_HALVES_CHARS:  # the first and the last half, overlapping by a letter when odd
            half = (len(word) + 1) // 2
            pieces += [word[:half], word[-half:]]
    if not pieces:
        return None
    return " OR ".join('"' + piece.replace('"', '""') + '"' for piece in dict.fromkeys(pieces))


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


def score(words: list[str], text: str, min_quality: float) -> TextMatch | None:
    """How well a frame's ``text`` (its lines normalised, one per line: what the index holds) holds the
    query's ``words`` (query_words); None below ``min_quality``. Each word is looked for in the whole text
    first (one call, in C) and in single lines only once found."""
    if not words or not text:
        return None
    compact = text.replace(" ", "")  # OCR often drops or adds spaces
    cutoff = 100 * min_quality
    total = sum(len(w) for w in words)
    quality, hits, missing = 0.0, [], 0
    for word in words:
        if word in text or word in compact:
            best = 1.0
        elif len(word) >= MIN_FUZZY_CHARS:
            best = max(fuzz.partial_ratio(word, text, score_cutoff=cutoff),
                       fuzz.partial_ratio(word, compact, score_cutoff=cutoff)) / 100
        else:
            best = 0.0
        quality += best * len(word) / total
        if best:
            hits.append(WordHit(word, _line_of(word, best, text.split("\n")), best))
        else:
            missing += len(word)
            if missing > (1 - min_quality) * total:
                return None  # the rest cannot make up for it
    if quality < min_quality:
        return None
    return TextMatch(quality, hits)


def _line_of(word: str, found: float, lines: list[str]) -> int:
    """The line a word was found in (with the score ``found``): the first holding it, else the best aligned."""
    for index, line in enumerate(lines):
        if word in line or word in line.replace(" ", ""):
            return index
    scores = [max(fuzz.partial_ratio(word, line), fuzz.partial_ratio(word, line.replace(" ", ""))) for line in lines]
    return max(range(len(lines)), key=scores.__getitem__) if found < 1 else 0
