"""A query's minus terms and quotes (shared/query_terms.py)."""

import pytest

from shared.query_terms import MAX_MINUS_TERMS, QueryTerms, parse_query


@pytest.mark.parametrize(("query", "terms"), [
    ("beach -people", QueryTerms("beach", ("people",))),
    ("-people  beach at  night", QueryTerms("beach at night", ("people",))),
    ('dog -"red car" -cat -cat', QueryTerms("dog", ("red car", "cat"))),
    ("blue t-shirt", QueryTerms("blue t-shirt")),  # a minus inside a word
    ('"t-shirt" -"beach -people"', QueryTerms("t-shirt", ("beach -people",))),
    ('"beach -people"', QueryTerms("beach -people")),  # quotes keep it literal
    ("-5 °C frost", QueryTerms("-5 °C frost")),  # a minus before a digit is a sign
    ("a - b", QueryTerms("a - b")),
    ('an "unclosed quote -x', QueryTerms('an "unclosed quote', ("x",))),
    ("café -crème", QueryTerms("café", ("crème",))),
])
def test_minus_terms_quotes_and_words(query, terms):
    assert parse_query(query) == terms


@pytest.mark.parametrize("query", ["-people", '-"a dog" -cat', '"" -x', " ".join(f"a -t{n}" for n in range(10))])
def test_a_query_with_nothing_to_look_for_or_too_many_minus_terms_is_refused(query):
    with pytest.raises(ValueError, match="subtract"):
        parse_query(query)
    assert MAX_MINUS_TERMS < 10
