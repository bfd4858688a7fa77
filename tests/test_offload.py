"""What leaves the event loop is decided by size (``gateway.http.offload``), and the offloaded steps are
short calls: token ids decoded by tiktoken at once, with the old messages for bad ids."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from gateway.http.offload import BIG_BODY_BYTES, BIG_RESPONSE_VALUES, big_body, big_response, offload
from gateway.protocol.token_ids import cl100k, decode_token_ids


def test_one_text_stays_inline_and_maximum_sizes_go_to_a_thread():
    assert not big_body(b'{"model": "m", "input": "' + b"x" * 4000 + b'"}')
    assert big_body(b"x" * (BIG_BODY_BYTES + 1))
    assert not big_response(np.zeros((1, 4096), np.float32))  # one row of the widest models
    assert not big_response(np.zeros((BIG_RESPONSE_VALUES // 384, 384), np.float32))
    assert big_response(np.zeros((2048, 384), np.float32))
    assert big_response(np.zeros((8, 4096), np.float32))  # few rows, but wide ones


def test_offload_runs_big_work_in_a_worker_thread_and_small_work_inline():
    async def where(condition):
        return await offload(condition, lambda: threading.current_thread() is threading.main_thread())

    assert asyncio.run(where(False)) is True
    assert asyncio.run(where(True)) is False


def test_token_ids_decode_as_tiktoken_does():
    ids = cl100k().encode("Hello world, " * 1000)
    assert decode_token_ids(ids) == "Hello world, " * 1000


@pytest.mark.parametrize("bad, message", [
    (-1, "token id -1 is not a cl100k_base token id (0..100276)"),
    (2**40, f"token id {2**40} is not a cl100k_base token id (0..100276)"),
    (100277, "token id 100277 is not a cl100k_base token id (0..100276)"),
    (100256, "token id 100256 is not a cl100k_base token id"),  # in range, unassigned
])
def test_a_bad_token_id_is_named_in_the_error(bad, message):
    with pytest.raises(ValueError) as info:
        decode_token_ids([9906, bad, 1917])
    assert str(info.value) == message


def test_tei_tokenize_answer_encoded_in_slices_is_the_one_piece_encoding(monkeypatch):
    import msgspec

    from gateway.engines import TokenSpan
    from gateway.http.routes import tei as routes
    from gateway.protocol import tei

    monkeypatch.setattr(routes, "TOKEN_SLICE", 3)
    texts = ["héllo wörld", "abc", "x"]
    spans = [[TokenSpan(i, "h", False, i, i + 1) for i in range(7)], [TokenSpan(1, "a", True, None, None)],
             []]
    whole = msgspec.json.encode([tei.to_simple_tokens(t, s) for t, s in zip(texts, spans, strict=True)])
    assert routes._encode_tokens(texts, spans) == whole
