"""A linear, non-recursive measure of a JSON body's nesting depth, checked before any JSON decoder sees it.

msgspec (like every recursive-descent decoder) raises ``RecursionError`` on ``[[[[...]]]]`` a few hundred
kilobytes deep; Python's own limit is far above any depth a real request needs (the deepest wire format
served, an OpenAI content-part list, is 4). So every POST body is measured first and one nested deeper
than ``max_json_depth`` is a 400, whatever its Content-Type says (a check keyed on Content-Type let the
Ollama routes, which take any type, still fail with 500).

The scan works on bytes, so invalid UTF-8 cannot break it, and it is made of whole-buffer passes of a few
milliseconds each for an 8 MiB body (``bytes.count`` / ``translate`` and numpy), about 10-20 ms in all.
No single pass holds the GIL for long, so a large body scanned in a worker thread (``gateway.http.offload``)
does not stall the event loop; a regex over the whole body (the earlier scan) held it 40-60 ms in one call.
"""

from __future__ import annotations

import numpy as np

from gateway.errors import InvalidRequest

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_NOT_MARKS = bytes(b for b in range(256) if b not in b'"[]{}')  # every byte but quotes and brackets
_STEP = np.zeros(256, dtype=np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays/objects in ``body`` (0 for a scalar, 1 for ``[1]``).

    Brackets inside strings do not count (backslash escapes honoured). For invalid JSON the figure is an
    upper bound of what a decoder would reach before failing: the brackets after an unterminated string
    count.
    """
    if body.count(b"[") + body.count(b"{") == 0:
        return 0
    if b"\\" in body:
        body = _blank_escaped_quotes(body)
    marks = np.frombuffer(body.translate(None, _NOT_MARKS), dtype=np.uint8)
    quotes = marks == _QUOTE
    # odd count of quotes so far: inside a string (from its opening quote up to its closing one)
    inside = (np.cumsum(quotes, dtype=np.int32) & 1).astype(bool)
    if inside.size and inside[-1]:  # an unterminated last string: its brackets count, as before
        inside[np.flatnonzero(quotes)[-1]:] = False
    steps = _STEP[marks]
    steps[inside] = 0
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def _blank_escaped_quotes(body: bytes) -> bytes:
    """``body`` with each escaped quote (one right after an odd run of backslashes) set to a zero byte,
    which the scan ignores. Escapes matter only for quotes: ``\\[`` is not JSON, and a 400 either way."""
    raw = np.frombuffer(body, dtype=np.uint8)
    slashes = np.flatnonzero(raw == _BACKSLASH)
    starts = np.flatnonzero(np.diff(slashes, prepend=-2) != 1)  # where each run of backslashes begins
    ends = np.append(starts[1:], slashes.size) - 1  # where it ends (indexes into ``slashes``)
    after = slashes[ends[(ends - starts) % 2 == 0]] + 1  # the byte after each odd-length run
    after = after[after < raw.size]
    escaped = after[raw[after] == _QUOTE]
    if not escaped.size:
        return body
    blanked = raw.copy()
    blanked[escaped] = 0
    return blanked.tobytes()


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
