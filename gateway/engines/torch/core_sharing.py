"""How many intra-op threads one CPU forward pass gets: its runner lane's share of the cores, or one
thread for a pass too small to repay waking torch's sleeping OpenMP workers.

The server makes idle OpenMP workers sleep at once (``threads.let_idle_openmp_threads_sleep``). Then every
parallel region of a pass (each matmul, softmax, layer norm: about 80 in MiniLM-L6) wakes its workers
with a futex and waits for the slowest; on a small pass that costs more than the second core saves.
Measured on the 2-core AMD EPYC VM, bfloat16, ``GOMP_SPINCOUNT=0`` (ms per pass, 1 thread / 2 threads):

| model (hidden size) | 8 tokens | 16 | 32 | 64 | 128 |
|---|---:|---:|---:|---:|---:|
| MiniLM-L6 shape (384) | 6.3 / 9.7 | 7.6 / 12.0 | 9.3 / 13.0 | 13.3 / 15.1 | 23.4 / 21.2 |
| BERT-large shape, 8 layers (1024) | 35.0 / 28.1 | 40.7 / 33.0 | 61.1 / 56.5 | 104.9 / 71.9 | |

A matrix product's work grows with tokens x hidden size squared, the wake-ups do not: a pass under
``TINY_PASS_WORK`` of it (MiniLM: under 57 padded tokens, a lone query; BERT-base: under 15) runs on
one thread. With spinning workers (``OMP_WAIT_POLICY=active``, or a ``GOMP_SPINCOUNT`` above 0) every
pass keeps its share: there a second thread helped even a one-text, 27-token MiniLM pass (9.2 against
11.7 ms).
"""

from __future__ import annotations

import os

import torch

TINY_PASS_WORK = 2**23  # padded tokens x hidden size^2 under which a pass runs on one thread


def idle_workers_sleep(environ: os._Environ | dict[str, str] = os.environ) -> bool:
    """Whether torch's OpenMP workers sleep as soon as they are idle, as GNU OpenMP reads the environment:
    ``OMP_WAIT_POLICY=passive``, or no policy and ``GOMP_SPINCOUNT=0`` (the server's default)."""
    policy = environ.get("OMP_WAIT_POLICY", "").strip().lower()
    if policy:
        return policy == "passive"
    return environ.get("GOMP_SPINCOUNT", "").strip() == "0"


def hidden_size(model: torch.nn.Module) -> int | None:
    """The hidden size of the first Hugging Face model inside ``model`` (``config.hidden_size``), or None."""
    for module in model.modules():
        size = getattr(getattr(module, "config", None), "hidden_size", None)
        if isinstance(size, int) and size > 0:
            return size
    return None


def tiny_pass_tokens(model: torch.nn.Module, device: str) -> int:
    """Padded tokens under which a forward pass of ``model`` on ``device`` runs on one thread: 0 (never)
    on a GPU, with spinning OpenMP workers, or when the hidden size is unknown."""
    size = hidden_size(model)
    if device != "cpu" or size is None or not idle_workers_sleep():
        return 0
    return -(-TINY_PASS_WORK // (size * size))  # ceil: MiniLM (384) 57 tokens, BERT-base (768) 15


class CoreSharing:
    """``share_cores`` for torch engines run on runner lanes. The engine sets ``_cores`` (intra-op threads
    at load) and ``_tiny_pass_tokens`` (``tiny_pass_tokens``)."""

    _cores: int
    _tiny_pass_tokens: int = 0

    def share_cores(self, lanes: int, padded_tokens: int | None = None) -> None:
        """Size this thread's intra-op pool before a pass: ``cores // lanes`` threads while ``lanes`` passes
        run at once, one for a pass of fewer than ``_tiny_pass_tokens`` padded tokens (rows x longest)."""
        small = padded_tokens is not None and padded_tokens < self._tiny_pass_tokens
        torch.set_num_threads(1 if small else max(1, self._cores // lanes))
