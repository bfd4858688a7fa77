"""Long inputs are tokenized through a bounded window of characters (``tokenization.encode``), with the
real all-MiniLM-L6-v2 tokenizer."""

from __future__ import annotations

import random

import pytest
from transformers import AutoTokenizer

from gateway.engines import InputTooLong
from gateway.engines.text.tokenization import encode
from gateway.engines.text.windows import WINDOW_CHARS_PER_TOKEN
from tests import tiny_models

LIMIT = 256
WORDS = "the quick brown fox jumps over a lazy dog while internationalization unbelievably happens".split()


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(tiny_models.minilm_dir())


@pytest.fixture(scope="module")
def long_text() -> str:
    rng = random.Random(3)
    return " ".join(rng.choice(WORDS) for _ in range(300_000))  # ~2.5 MB


def cut(tokenizer, text: str, side: str = "right") -> list[int]:
    """The tokenizer's own truncation of the whole ``text`` (tokenized in full)."""
    default, tokenizer.truncation_side = tokenizer.truncation_side, side
    try:
        return tokenizer(text, truncation=True, max_length=LIMIT)["input_ids"]
    finally:
        tokenizer.truncation_side = default


def test_a_long_text_truncates_as_its_window_and_as_the_whole_text(tokenizer, long_text):
    got = encode(tokenizer, {"text": [long_text, "short"]}, LIMIT, truncate=True)
    window = long_text[:LIMIT * WINDOW_CHARS_PER_TOKEN]
    assert got[0].ids == cut(tokenizer, window) == cut(tokenizer, long_text[:200_000]) and got[0].truncated
    assert got[1].ids == tokenizer("short")["input_ids"] and not got[1].truncated


def test_left_truncation_keeps_the_end(tokenizer, long_text):
    got = encode(tokenizer, {"text": [long_text]}, LIMIT, truncate=True, side="left")
    assert got[0].ids == cut(tokenizer, long_text[-200_000:], "left")


def test_a_window_of_mostly_whitespace_widens_until_it_decides(tokenizer):
    text = "alpha " + " " * 10 * LIMIT * WINDOW_CHARS_PER_TOKEN + "omega"
    got = encode(tokenizer, {"text": [text]}, LIMIT, truncate=True)
    assert got[0].ids == tokenizer(text)["input_ids"]  # both words: the window grew past the spaces


def test_reject_says_the_length_is_a_lower_bound(tokenizer, long_text):
    with pytest.raises(InputTooLong) as info:
        encode(tokenizer, {"text": ["fine", long_text]}, LIMIT, truncate=False)
    assert info.value.index == 1 and info.value.at_least and info.value.length > LIMIT
    assert info.value.length_text.startswith("at least")


def test_pairs_are_windowed_too(tokenizer, long_text):
    got = encode(tokenizer, {"text": ["a query"], "text_pair": [long_text]}, 512, truncate=True)
    whole = tokenizer("a query", long_text[:100_000], truncation=True, max_length=512)["input_ids"]
    assert got[0].ids == whole
