"""What a model's runner observed (for ``/health`` and metrics), and its default batch budget."""

from __future__ import annotations

from dataclasses import dataclass

CPU_BATCH_TOKENS = 2048  # measured: less padding and cache-sized activations beat big CPU batches
GPU_BATCH_TOKENS = 16384


def default_batch_tokens(device: str) -> int:
    """The padded-token budget of one forward pass on ``device`` when the config sets none.

    On CPU a length-sorted 256-text request ran ~2x faster cut at 2048 padded tokens than at 16384
    (batches 83% real tokens instead of 47%; ``gateway bench`` load 2); GPUs want wide batches.
    """
    return CPU_BATCH_TOKENS if device == "cpu" else GPU_BATCH_TOKENS


@dataclass
class BatchStats:
    """What the runner observed, for health and metrics (times in ms)."""

    batches: int = 0
    items: int = 0
    last_batch_size: int = 0
    last_batch_tokens: int = 0
    last_batch_ms: float | None = None
    tokens_per_s: float | None = None  # moving average of padded tokens per second of engine time
    # Batches smaller than this do not move tokens_per_s: a tiny batch (the 2-token warm-up, one short
    # request) is all per-batch overhead, and its speed, 10-100x below a full batch's, made the first
    # burst after start-up look minutes long to drain and answer 429 (Runner.max_queue_wait_s).
    speed_min_tokens: int = 0
    last_error: str | None = None
    failing: bool = False
    dropped_items: int = 0  # inputs of finished requests dropped before reaching the engine
    non_finite: int = 0  # outputs (vectors, scores) holding NaN or infinity: their requests failed

    def record(self, size: int, padded: int, ms: float) -> None:
        """Count a successful batch of ``size`` inputs, ``padded`` tokens, ``ms`` of engine time."""
        self.batches += 1
        self.items += size
        self.last_batch_size, self.last_batch_tokens, self.last_batch_ms = size, padded, ms
        if padded >= self.speed_min_tokens:
            speed = padded / max(ms, 1e-3) * 1000
            self.tokens_per_s = speed if self.tokens_per_s is None else 0.8 * self.tokens_per_s + 0.2 * speed
        self.failing, self.last_error = False, None
