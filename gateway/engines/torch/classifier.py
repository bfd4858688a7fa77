"""Torch engine for sequence classifiers (``AutoModelForSequenceClassification`` folders with several labels).

sentence-transformers' ``CrossEncoder`` loads the folder as it is (its own head, ``id2label`` intact), and
the forward pass is ``TorchEngine``'s, fed with token ids we produce: single texts, or text pairs for
NLI-style models. ``classify`` returns every logit, float32 (the head is kept float32, see
``engine.float32_heads``); the service applies softmax, so probabilities equal transformers' softmax over
``model(**inputs).logits``.
"""

from __future__ import annotations

import numpy as np
import torch

from gateway.engines import Output, Tokens
from gateway.engines.torch.engine import TorchEngine


class TorchClassifierEngine(TorchEngine):
    """A sequence classifier behind the ``Engine`` interface: ``spec.outputs == ("classify",)``,
    ``spec.labels`` the folder's label names in logit order."""

    @torch.inference_mode()
    def forward(self, batch: list[Tokens], output: Output) -> np.ndarray:
        """See ``Engine.forward``: ``(n, labels)`` float32 raw class logits of texts or pairs.

        Raises:
            ValueError: ``output`` is not ``classify``.
        """
        if output != "classify":
            raise ValueError(f"a classifier gives class logits, not {output!r}")
        logits = self._scores(batch)
        return logits.float().reshape(len(batch), -1).cpu().numpy()
