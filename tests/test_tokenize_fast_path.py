"""Plain texts skip transformers' Python call around the Rust tokenizer (``tokenization.untruncated``): the
ids must be exactly those ``tokenizer(...)`` gives, whatever a previous truncating call left set, with the
real all-MiniLM-L6-v2 tokenizer (a BERT WordPiece) and CLIP's byte-level BPE one."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from gateway.engines.text.tokenization import _plain_backend, encode, untruncated
from tests import tiny_dual, tiny_models

TEXTS = ["what is the capital of France?", "  Leading and trailing spaces  ",
         "[SEP] [CLS] <|endoftext|> [PAD]", "Ünïcödé façade — naïve café, 東京は日本の首都です",
         "emoji 🙂🚀 and tabs\tand\nnewlines",
         "word " * 400]


@pytest.fixture(scope="module", params=["minilm", "clip"])
def tokenizer(request):
    if request.param == "minilm":
        return AutoTokenizer.from_pretrained(tiny_models.minilm_dir())
    return tiny_dual.clip_tokenizer()


def expected(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]


def test_plain_texts_take_the_rust_call(tokenizer):
    assert _plain_backend(tokenizer) is not None


def test_ids_equal_the_tokenizer_call_even_after_a_truncating_call(tokenizer):
    assert untruncated(tokenizer, {"text": TEXTS}) == (expected(tokenizer, TEXTS), None)
    tokenizer(TEXTS, truncation=True, max_length=8, padding="max_length")  # leaves truncation and padding set
    rows, _ = untruncated(tokenizer, {"text": TEXTS})
    assert rows == expected(tokenizer, TEXTS)
    assert max(len(row) for row in rows) > 8


def test_encode_truncates_and_rejects_as_before(tokenizer):
    limit = 16
    tokens = encode(tokenizer, {"text": TEXTS}, limit, truncate=True)
    full = expected(tokenizer, TEXTS)
    for row, whole in zip(tokens, full, strict=True):
        assert len(row) <= limit
        assert row.truncated == (len(whole) > limit)
        if not row.truncated:
            assert list(row.ids) == whole


def test_pairs_keep_their_token_types(tokenizer):
    rows, types = untruncated(tokenizer, {"text": ["a query"], "text_pair": ["a document"]})
    reference = tokenizer(["a query"], ["a document"], add_special_tokens=True, truncation=False)
    assert rows == reference["input_ids"]
    assert types == (reference["token_type_ids"] if "token_type_ids" in reference else None)
