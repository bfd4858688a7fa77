"""The linear JSON depth scan that runs before any decoder (``gateway.http.json_depth``)."""

from __future__ import annotations

import json
import random

import pytest

from gateway.errors import InvalidRequest
from gateway.http.json_depth import check_json_depth, json_depth


@pytest.mark.parametrize("value", [1, "x", [], {}, [1, [2, [3]]], {"a": [{"b": {"c": []}}]},
                                   {"input": [{"content": [{"type": "text", "text": "hi"}]}]}])
def test_depth_is_what_a_decoder_would_reach(value):
    def depth(v):
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        return 0 if children is None else 1 + max((depth(c) for c in children), default=0)

    assert json_depth(json.dumps(value).encode()) == depth(value)


def test_brackets_inside_strings_do_not_count_and_escapes_are_honoured():
    body = json.dumps({"input": ["[[[[{{{{", '\\"[[[[', "\\", "]]]]"]}).encode()
    assert json_depth(body) == 2


def test_invalid_utf8_and_unterminated_strings_do_not_break_the_scan():
    assert json_depth(b'{"input": ["\xff\xfe[[", "\xc3"]}') == 2
    assert json_depth(b'{"input": "[[[[') == 5  # invalid JSON: an upper bound, and a 400 either way


def test_a_body_nested_past_the_limit_is_a_400_and_one_at_it_passes():
    check_json_depth(b"[" * 32 + b"]" * 32, 32)
    with pytest.raises(InvalidRequest) as info:
        check_json_depth(b"[" * 300_000 + b"]" * 300_000, 32)
    assert info.value.status == 400 and "300000 levels" in info.value.message


def test_random_bodies_with_escapes_and_brackets_in_strings_match_a_decoder():
    rng = random.Random(22)
    leaves = ["a[", '\\"{', "\\", "x]\\\\", 1, '}"[', "", '\\\\"[', '\\\\\\"]]', None]

    def value(level):
        roll = rng.random()
        if level > 6 or roll < 0.3:
            return rng.choice(leaves)
        if roll < 0.65:
            return [value(level + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(["k[", 'q"', "\\"]) + str(i): value(level + 1) for i in range(rng.randint(0, 3))}

    def depth(v):
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        return 0 if children is None else 1 + max((depth(c) for c in children), default=0)

    for _ in range(3000):
        v = value(0)
        assert json_depth(json.dumps(v).encode()) == depth(v)
