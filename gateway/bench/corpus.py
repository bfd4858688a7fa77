"""The benchmark corpus: real English text of mixed lengths, the docstrings of Python's standard library.

Docstrings are read from the stdlib source files with ``ast`` rather than by importing every module
(``pydoc``/``inspect`` style), because importing ``antigravity``, ``this`` or ``tkinter`` has side
effects. The order is deterministic, so every run (and the in-process reference) sees the same texts.
"""

from __future__ import annotations

import ast
import functools
import inspect
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

MIN_CHARS = 20  # shorter docstrings ("Docstring.", "XXX") are not realistic inputs
MAX_CHARS = 2000  # the model truncates at 256 tokens anyway; keep request bodies reasonable


@dataclass(frozen=True)
class Corpus:
    """Texts for every load, all cut from the same docstrings.

    Attributes:
        short: one-line summaries (about 5-30 model tokens): load 1, one text per request.
        mixed: whole docstrings of mixed length (a few tokens to past the 256-token limit): load 2.
        queries: one-line summaries used as rerank queries (load 3), disjoint from ``short``.
    """

    short: list[str]
    mixed: list[str]
    queries: list[str]


def _docstrings_of(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):  # test fixtures with deliberately bad syntax
        return []
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef))]
    docs = (ast.get_docstring(node, clean=False) for node in nodes)
    return [inspect.cleandoc(doc).strip() for doc in docs if doc]


def stdlib_docstrings() -> list[str]:
    """Module, class and function docstrings of the stdlib (tests excluded), deduplicated, in file order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    seen: dict[str, None] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in {"site-packages", "test", "idlelib", "lib2to3"} or "tests" in parts:
            continue
        for doc in _docstrings_of(path):
            if MIN_CHARS <= len(doc):
                seen.setdefault(doc[:MAX_CHARS], None)
    return list(seen)


@functools.cache
def load_corpus(seed: int = 0) -> Corpus:
    """The benchmark corpus, shuffled with ``seed`` so lengths are mixed within every request."""
    docs = stdlib_docstrings()
    random.Random(seed).shuffle(docs)
    summaries = dict.fromkeys(doc.split("\n", 1)[0].strip() for doc in docs)  # many docstrings share one
    short = [s for s in summaries if MIN_CHARS <= len(s) <= 120]
    return Corpus(short=short[200:], mixed=docs, queries=short[:200])


def cycle(texts: list[str], start: int, count: int) -> list[str]:
    """``count`` consecutive texts from ``start``, wrapping around."""
    return [texts[(start + i) % len(texts)] for i in range(count)]
