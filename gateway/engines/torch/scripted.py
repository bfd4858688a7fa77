"""A transformer's forward pass as one TorchScript graph (``torch.jit.trace``), for encoders on CPU.

Why: an eager pass returns to Python between its operators (about 200 in MiniLM-L6), and each return
takes the GIL, which the server's event loop holds while it parses, tokenizes and answers other requests:
in-process, a one-text MiniLM pass on one thread took 7.4 ms alone and 14.6 ms while another thread ran
Python half the time. A TorchScript method runs in C++ with the GIL released from its first operator to
its last (``torch/csrc/jit/python/pybind_utils.h``, ``runAndInsertCall``), and skips the Python between
operators: 5.6 ms alone and 6.4 ms beside the busy thread; batches of 8 short texts 12-27% faster, of 32
1-9% (bfloat16, one thread, 2-core AMD EPYC; ``benchmarks/scripted_pass.py``).

Safe only where the trace holds for every input: ``torch.jit.trace`` records the operators one example
ran, so a forward that branches in Python on shapes or values would be recorded wrong for other inputs.
Hence an allow-list of architectures whose encoder forward is the same operators for every batch
(``SCRIPTABLE``); the example is a padded batch, so the attention-mask path (not the no-padding shortcut)
is the one recorded; and before it is used the graph is checked against the eager model on probe
batches of other shapes. Any exception or difference keeps the eager model (logged), never a wrong
vector. Weights are shared with the eager model (no second copy).
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

# transformers model_type values whose encoder forward runs the same operators for every batch: each was
# checked on a tiny model with wide weights against its eager forward on random batches of 1-12 inputs of
# up to 200 tokens (exact in float32; ``tests/test_scripted.py``); ModernBERT with a sliding window of 8
# tokens, so that its local attention was exercised at every length
SCRIPTABLE = ("bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "electra", "modernbert")
LONG_PROBE_TOKENS = 160  # past ModernBERT's local attention window (128 tokens), within BERT's 512
TOLERANCE = 1e-3  # max |traced - eager| over real positions, relative to the largest |eager| state


class _Positional(torch.nn.Module):
    """``model(**{name: arg})`` with the inputs as positional arguments, as ``torch.jit.trace`` needs."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, args, strict=True)), return_dict=False)[0]


Inputs = dict[str, torch.Tensor]


def scriptable(model: torch.nn.Module, device: torch.device | str) -> bool:
    """Whether ``model`` (a transformers ``PreTrainedModel``) may be traced: on CPU, an allow-listed
    encoder architecture (``SCRIPTABLE``) that returns no extra hidden states or attentions."""
    config = getattr(model, "config", None)
    return (torch.device(device).type == "cpu" and config is not None
            and getattr(config, "model_type", None) in SCRIPTABLE
            and not getattr(config, "is_decoder", False)
            and not getattr(config, "output_hidden_states", False)
            and not getattr(config, "output_attentions", False))


def trace_states(model: torch.nn.Module, example: Inputs, probes: list[Inputs],
                 real: Callable[[Inputs], torch.Tensor]) -> Callable[[Inputs], torch.Tensor] | None:
    """``model(**inputs)``'s first output (last hidden states, or logits) as a traced TorchScript graph,
    checked before use.

    Args:
        model: an encoder that ``scriptable`` accepts, in eval mode.
        example: the inputs traced (names as ``model`` takes them); give a padded batch so the mask path
            is recorded.
        probes: inputs of other shapes, each run eagerly and traced; the outputs must agree within
            ``TOLERANCE`` where ``real(probe)`` (a bool mask of the output's leading dimensions) is true.
        real: which positions (tokens, or rows) of a probe's output hold real results.

    Returns:
        a callable mapping inputs with ``example``'s names to the first output (``(batch, seq, hidden)``
        states in the model's dtype, or logits), or None (logged) when tracing raised or a probe
        disagreed: the caller keeps the eager model.
    """
    names = tuple(example)
    wrapper = _Positional(model, names).eval()
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # transformers' shape checks warn that they are recorded as constants: the probes check that
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            graph = torch.jit.trace(wrapper, tuple(example[n] for n in names), check_trace=False)
            for probe in probes:
                want = wrapper(*(probe[n] for n in names)).float()
                got = graph(*(probe[n] for n in names)).float()
                keep = real(probe)
                gap = (want[keep] - got[keep]).abs().max().item() if bool(keep.any()) else 0.0
                if got.shape != want.shape or not gap <= TOLERANCE * (1.0 + want[keep].abs().max().item()):
                    log.warning("TorchScript trace of %s disagrees with the eager model (%s): eager passes",
                                type(model).__name__, f"max difference {gap:.3g}")
                    return None
    except Exception as exc:  # noqa: BLE001 - any failure to trace means eager passes, never a failed load
        log.warning("TorchScript trace of %s failed (%s: %s): eager passes", type(model).__name__,
                    type(exc).__name__, exc)
        return None

    log.info("traced %s as TorchScript (matched the eager model on %d probe batches)",
             type(model).__name__, len(probes))

    def states(inputs: Inputs) -> torch.Tensor:
        return graph(*(inputs[n] for n in names))

    return states


def padded_probe(vocab: int, count: int, width: int, *, seed: int, types: bool) -> Inputs:
    """A padded batch of ``count`` random-token rows of up to ``width`` tokens (row 0 full, the others
    cut at random lengths): ``input_ids``, ``attention_mask`` and, with ``types``, ``token_type_ids``, all
    ``(count, width)`` int64."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (count, width), generator=gen)
    mask = torch.ones(count, width, dtype=torch.int64)
    for row in range(1, count):
        length = int(torch.randint(1, width, (1,), generator=gen))
        mask[row, length:], ids[row, length:] = 0, 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if types:
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


# what a sentence-transformers Transformer module stores -> the transformers output it reads
OUTPUTS = {"token_embeddings": "last_hidden_state", "scores": "logits"}


def script_transformer(module: torch.nn.Module, device: torch.device | str
                       ) -> Callable[[dict], dict] | None:
    """A traced stand-in for a sentence-transformers ``Transformer`` module's text forward pass, or None
    where it may not be traced (``scriptable``; the module must store the model's ``last_hidden_state``
    as ``token_embeddings`` (an embedder) or its ``logits`` as ``scores`` (a cross-encoder or classifier
    head)) or the trace failed its check.

    Like ``module(features)``, the callable takes the features dict (``input_ids``, ``attention_mask``
    and, for pairs, ``token_type_ids``: ``(n, seq)`` int64; missing segment ids become zeros, as BERT
    assumes, for a model whose forward takes them), stores the output under the module's
    ``module_output_name`` (``(n, seq, hidden)`` token states in the model's dtype, or ``(n, labels)``
    logits) and returns the dict.
    """
    model = getattr(module, "model", None) or getattr(module, "auto_model", None)
    text = (getattr(module, "modality_config", None) or {}).get("text", {})
    reads = OUTPUTS.get(getattr(module, "module_output_name", None))
    if (model is None or reads is None or not scriptable(model, device) or text.get("method") != "forward"
            or text.get("method_output_name") not in (reads, [reads])):
        return None
    vocab = int(model.config.vocab_size)
    # RoBERTa-style positions start after the padding index: two fewer tokens than position embeddings
    limit = int(getattr(model.config, "max_position_embeddings", 512)) - 2
    # segment ids only where the forward names them (MPNet, DistilBERT and ModernBERT take none)
    types = "token_type_ids" in inspect.signature(model.forward).parameters
    example = padded_probe(vocab, 2, 7, seed=0, types=types)
    probes = [padded_probe(vocab, 1, 5, seed=1, types=types), padded_probe(vocab, 3, 19, seed=2, types=types),
              padded_probe(vocab, 1, min(40, limit), seed=3, types=types),
              padded_probe(vocab, 2, min(LONG_PROBE_TOKENS, limit), seed=4, types=types)]
    if reads == "logits":  # one row of logits per input, every row compared
        states = trace_states(model, example, probes, lambda inputs: torch.ones(len(inputs["input_ids"]),
                                                                                dtype=torch.bool))
    else:
        states = trace_states(model, example, probes, lambda inputs: inputs["attention_mask"].bool())
    if states is None:
        return None
    output = module.module_output_name

    def forward(features: dict) -> dict:
        if types:
            features.setdefault("token_type_ids", torch.zeros_like(features["input_ids"]))
        features[output] = states(features)  # reads the inputs it was traced with, nothing else
        return features

    return forward
