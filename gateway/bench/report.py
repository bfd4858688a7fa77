"""The benchmark table (Markdown): server throughput and latency next to the in-process references.

``ratio`` is server texts/s over the float32 reference's texts/s; for concurrency 1, ``p50/ref`` and
``Δp50`` compare the server's median latency with that reference's for the same work (at higher
concurrency latency includes queueing, so only throughput is compared). ``ref@prec`` / ``ratio@prec``
compare with the in-process reference at the server's own precision (the same as the float32 columns
when the server runs float32). ``client CPU ms/req`` is what the load generator itself burned per
request, on the same cores as the server. ``target`` shows the goals of issues 17 and 27 where one applies
(``forward@prec``: the bare forward pass of one short text at the server's precision, in the reference).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from gateway.bench.client import LoadResult
from gateway.bench.reference import Reference


@dataclass(frozen=True)
class Target:
    """A goal on one row: ``value(row) <op> bound``."""

    text: str
    value: Callable[[LoadResult, Reference], float]
    bound: float
    at_most: bool = False

    def met(self, result: LoadResult, reference: Reference) -> bool:
        value = self.value(result, reference)
        return value <= self.bound if self.at_most else value >= self.bound


def throughput_ratio(result: LoadResult, reference: Reference) -> float:
    return result.texts_per_s / reference.texts_per_s


def p50_ratio(result: LoadResult, reference: Reference) -> float:
    return result.percentile_ms(50) / reference.p50_ms


def p50_delta_ms(result: LoadResult, reference: Reference) -> float:
    return result.percentile_ms(50) - reference.p50_ms


def p50_over_forward_ms(result: LoadResult, reference: Reference) -> float:
    return result.percentile_ms(50) - reference.forward_p50_ms


def targets_for(result: LoadResult) -> list[tuple[Target, str]]:
    """The issues' goals for this load, each with the reference it is measured against (``fp32`` or
    ``prec``: the server's precision). Load 1: issue 17's float32 ratio, issue 27's per-request overhead
    (>= 0.85x of in-process at the server's precision at concurrency 32 and 128; a lone request's p50
    within 2 ms of the bare forward pass of one text)."""
    group, concurrency = result.load.group, result.load.concurrency
    if group == "1" and concurrency == 1:
        return [(Target("p50 - forward@prec <= 2 ms", p50_over_forward_ms, 2.0, at_most=True), "prec")]
    if group == "1" and concurrency == 32:
        return [(Target("ratio >= 1.3", throughput_ratio, 1.3), "fp32"),
                (Target("ratio@prec >= 0.85", throughput_ratio, 0.85), "prec")]
    if group == "1" and concurrency == 128:
        return [(Target("ratio@prec >= 0.85", throughput_ratio, 0.85), "prec")]
    if group == "2":
        return [(Target("ratio >= 2.0", throughput_ratio, 2.0), "fp32")]
    if group == "3" and concurrency == 1:
        return [(Target("p50/ref <= 0.5", p50_ratio, 0.5, at_most=True), "fp32")]
    return []


HEADER = ("load", "sent per request", "conc", "requests", "texts/s", "p50 ms", "p99 ms", "ref texts/s",
          "ratio", "ref p50 ms", "p50/ref", "Δp50 ms", "ref@prec texts/s", "ratio@prec", "client CPU ms/req",
          "target")


def row(result: LoadResult, reference: Reference, same_precision: Reference | None = None) -> tuple[str, ...]:
    """One table row against the float32 ``reference`` and the one at the server's precision
    (``same_precision``, default: the float32 one); latency comparisons only at concurrency 1."""
    load, single = result.load, result.load.concurrency == 1
    same_precision = same_precision or reference
    verdicts = [f"{target.text}: {'met' if target.met(result, ref) else 'MISSED'}"
                for target, which in targets_for(result)
                for ref in [reference if which == "fp32" else same_precision]]
    verdict = "; ".join(verdicts)
    if result.errors:
        verdict = f"{result.errors} errors ({result.first_error}) {verdict}".strip()
    return (load.group, load.label, str(load.concurrency), str(result.requests), _num(result.texts_per_s),
            _num(result.percentile_ms(50)), _num(result.percentile_ms(99)), _num(reference.texts_per_s),
            f"{throughput_ratio(result, reference):.2f}", _num(reference.p50_ms) if single else "",
            f"{p50_ratio(result, reference):.2f}" if single else "",
            f"{p50_delta_ms(result, reference):+.1f}" if single else "", _num(same_precision.texts_per_s),
            f"{throughput_ratio(result, same_precision):.2f}", f"{result.client_cpu_ms:.2f}", verdict)


def _num(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def reference_table(references: dict[str, Reference]) -> str:
    refs = [(key, _num(ref.texts_per_s), _num(ref.p50_ms), _num(ref.p99_ms),
             ref.note if math.isnan(ref.forward_p50_ms) else f"{ref.note}; forward pass alone p50 "
                                                               f"{ref.forward_p50_ms:.1f} ms")
            for key, ref in references.items()]
    return markdown_table(("reference", "texts/s", "p50 ms", "p99 ms", "how"), refs)


def format_report(results: list[LoadResult], references: dict[str, Reference], context: str,
                  precision_references: dict[str, Reference] | None = None, precision: str = "float32",
                  memory: str = "") -> str:
    """The reference tables, then the results table (Markdown), headed by ``context`` (machine, model).

    Args:
        references: the float32 in-process references, by ``Load.reference`` key.
        precision_references: the same at the server's ``precision`` (None: the server runs float32).
        memory: a line on the served process's memory (idle RSS), printed under the context.
    """
    same = precision_references or references
    parts = [context, *([memory] if memory else []), "",
             "In-process reference (sentence-transformers encode, float32):", "", reference_table(references)]
    if precision_references:
        parts += ["", f"In-process reference at the server's precision ({precision}):", "",
                  reference_table(precision_references)]
    rows = [row(r, references[r.load.reference], same.get(r.load.reference)) for r in results]
    parts += ["", f"Server ({precision}):", "", markdown_table(HEADER, rows)]
    return "\n".join(parts)
