"""The character windows long inputs are tokenized through (``tokenization.encode``), kept free of heavy
imports so the HTTP layer can apply them too."""

from __future__ import annotations

from typing import Literal

# A long input is tokenized only through a window of its characters, never in full (a 20 MB input would
# take the tokenizer tens of seconds for the model's 256 tokens). 16 characters per token of the limit is
# far above what real text needs (English averages ~4.5, code and URLs ~3, CJK ~1): a window this wide
# holds more tokens than the limit unless the text is mostly whitespace or other characters that make no
# tokens, and then the window grows (``WINDOW_MARGIN``) until it is decisive, up to 16 times as wide:
# past that a text is taken as that window (a bound on what whitespace padding can cost: ~0.1 s).
WINDOW_CHARS_PER_TOKEN = 16
WINDOW_MAX_CHARS_PER_TOKEN = 16 * WINDOW_CHARS_PER_TOKEN
# Tokens past the limit a window must hold to decide: the window's last word may be cut, and a cut word
# can make a few more tokens than the whole one, so those must lie beyond what is kept.
WINDOW_MARGIN = 16


def char_window(text: str, chars: int, side: Literal["right", "left"] = "right") -> str:
    """What a cut at ``side`` keeps of ``text``: its first ``chars`` characters (its last for ``left``)."""
    if len(text) <= chars:
        return text
    return text[:chars] if side == "right" else text[-chars:]
