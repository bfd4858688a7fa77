"""A linear, non-recursive measure of a JSON body's nesting depth, checked before any JSON decoder sees it.

msgspec (like every recursive-descent decoder) raises ``RecursionError`` on ``[[[[...]]]]`` a few hundred
kilobytes deep; Python's own limit is far above any depth a real request needs (the deepest wire format
served, an OpenAI content-part list, is 4). So every POST body is measured first and one nested deeper
than ``max_json_depth`` is a 400, whatever its Content-Type says (a check keyed on Content-Type let the
Ollama routes, which take any type, still fail with 500).

The scan works on bytes, so invalid UTF-8 cannot break it: strings are removed with one regex (honouring
backslash escapes), every byte but brackets is deleted with ``bytes.translate``, and the running depth is
a numpy cumulative sum. About 20 ms for an 8 MiB body.
"""

from __future__ import annotations

import re

import numpy as np

from gateway.errors import InvalidRequest

# a JSON string, escapes included ("unrolled loop" form: linear, no backtracking); an unterminated string
# does not match, so its brackets count: such a body is invalid JSON and gets a 400 either way.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays/objects in ``body`` (0 for a scalar, 1 for ``[1]``).

    Brackets inside strings do not count. For invalid JSON the figure is an upper bound of what a
    decoder would reach before failing.
    """
    if body.count(b"[") + body.count(b"{") == 0:
        return 0
    if b'"' in body:
        body = _STRING.sub(b'""', body)
    brackets = body.translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = _STEP[np.frombuffer(brackets, dtype=np.uint8)].astype(np.int32)
    return int(np.cumsum(steps).max())


def check_json_depth(body: bytes, max_depth: int) -> None:
    """Raises InvalidRequest (400) when ``body`` nests arrays/objects deeper than ``max_depth``."""
    # a body with fewer brackets than the limit cannot exceed it: skip the scan for most requests
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return
    depth = json_depth(body)
    if depth > max_depth:
        raise InvalidRequest(
            f"The JSON body nests arrays/objects {depth} levels deep; at most {max_depth} are allowed.",
            code="json_too_deep",
        )
