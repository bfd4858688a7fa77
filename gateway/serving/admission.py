"""Admission before work: a per-model budget of in-flight tokens, checked before a request is tokenized.

A request is estimated in tokens from what it holds before tokenizing (characters at the model's
observed characters per token, token-id lists by length, images at a flat cost), admitted or refused
(429) in microseconds, then charged its real tokens once they are known, and released when it ends. So a
burst of bulk requests is refused at once instead of queueing for the one tokenizer thread first (TEI
``infer.try_acquire_permit``). The runner still checks its queue in real tokens (``Runner._admit``).

Two limits, both from the settings the runner uses:

- ``max_queue_tokens``: tokens in flight (tokenizing, queued or in a forward pass). Small requests (at
  most ``SMALL_SHARE`` of it, e.g. one query) are counted apart, in a pool of their own of
  ``SMALL_EXTRA`` of it, so bulk clients that keep the budget full (or one request larger than the
  budget, admitted into an idle model) never lock interactive ones out.
- ``max_queue_wait_s``: the work the engine runs before this request is done, at its measured speed.
  The runner serves the request with the fewest queued tokens first (``batch_queue``), so what runs
  before a request of ``e`` tokens is about ``sum(min(t, e))`` over the requests in flight (``t`` each):
  a one-text request is admitted behind any amount of bulk work, a bulk one is refused once the queue
  already holds that many seconds.

Everything here runs on the event loop (one thread): no lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gateway.errors import Overloaded

SMALL_SHARE = 0.01  # a request estimated at most this share of the budget is small (interactive)
SMALL_EXTRA = 0.10  # small requests have a pool of their own of this share of the budget
MAX_RETRY_AFTER_S = 60
DEFAULT_CHARS_PER_TOKEN = 4.0  # English text with a BERT-style WordPiece vocabulary, before any is measured
IMAGE_TOKENS_ESTIMATE = 256  # an image before its processor ran (CLIP: 50-577, a VLM: 64-1280 by size)


@dataclass(eq=False)
class Ticket:
    """One admitted request's charge: its estimate until ``charge``, then its real tokens."""

    admission: Admission
    tokens: int
    chars: int = 0
    small: bool = False  # counted in the small requests' pool
    released: bool = False

    def charge(self, tokens: int) -> None:
        """Replace the estimate by the request's real ``tokens`` (and learn characters per token)."""
        if self.released:
            return
        self.admission.in_flight += tokens - self.tokens
        if self.small:
            self.admission.small_in_flight += tokens - self.tokens
        self.tokens = tokens
        if self.chars and tokens:
            self.admission.learn(self.chars, tokens)

    def release(self) -> None:
        """The request ended (answered, refused later, failed or cancelled): free its share."""
        if not self.released:
            self.released = True
            self.admission.in_flight -= self.tokens
            if self.small:
                self.admission.small_in_flight -= self.tokens
            self.admission.tickets.discard(self)


@dataclass
class Admission:
    """The in-flight work of one served model (see module docstring)."""

    in_flight: int = 0  # tokens of admitted requests not ended yet (estimates until charged)
    small_in_flight: int = 0  # the part of in_flight that small requests hold
    tickets: set[Ticket] = field(default_factory=set)
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN
    refused: int = 0

    def estimate(self, chars: int, inputs: int, max_tokens: int) -> int:
        """Tokens that ``inputs`` texts of ``chars`` characters in all will hold: at the observed
        characters per token, plus two special tokens each, at most ``max_tokens`` each."""
        guess = math.ceil(chars / self.chars_per_token) + 2 * inputs
        return max(1, min(guess, inputs * max_tokens))

    def learn(self, chars: int, tokens: int) -> None:
        """Move the characters-per-token estimate towards a request's (moving average, 1..16)."""
        observed = min(16.0, max(1.0, chars / tokens))
        self.chars_per_token = 0.8 * self.chars_per_token + 0.2 * observed

    def admit(self, estimate: int, *, budget: int, max_wait_s: float | None, tokens_per_s: float | None,
              name: str, chars: int = 0) -> Ticket:
        """Admit a request estimated at ``estimate`` tokens, or refuse it.

        Args:
            budget: ``max_queue_tokens`` (times the model's replicas behind a Ray ingress).
            max_wait_s: ``max_queue_wait_s``; None: no bound on the wait.
            tokens_per_s: the engine's measured speed, all lanes together (None: not measured yet).
            name: the model's name, for the error message.
            chars: the characters the estimate came from (0: not text), to learn the ratio from.

        Raises:
            Overloaded: 429 with ``Retry-After``; a model with nothing in flight admits any request.
        """
        small = estimate <= budget * SMALL_SHARE
        if self.tickets:
            if small:
                full = self.small_in_flight > 0 and self.small_in_flight + estimate > budget * SMALL_EXTRA
            else:
                full = self.in_flight - self.small_in_flight + estimate > budget
            ahead = sum(min(t.tokens, estimate) for t in self.tickets) + estimate
            slow = bool(max_wait_s and tokens_per_s) and ahead / tokens_per_s > max_wait_s
            if full or slow:
                self.refused += 1
                raise Overloaded(f"model {name!r} is overloaded: its queue is full, retry later",
                                 retry_after_s=self.retry_after_s(tokens_per_s))
        ticket = Ticket(self, estimate, chars, small)
        self.tickets.add(ticket)
        self.in_flight += estimate
        self.small_in_flight += estimate if small else 0
        return ticket

    def retry_after_s(self, tokens_per_s: float | None) -> int:
        """Seconds until what is in flight has run, at ``tokens_per_s`` (1..60; 1 when unknown)."""
        if not tokens_per_s:
            return 1
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(self.in_flight / tokens_per_s)))
