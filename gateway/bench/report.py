"""The benchmark table (Markdown): server throughput and latency next to the in-process reference.

``ratio`` is server texts/s over reference texts/s; for concurrency 1, ``p50/ref`` and ``Δp50`` compare
the server's median latency with the reference's for the same work (at higher concurrency latency
includes queueing, so only throughput is compared). ``client CPU ms/req`` is what the load generator
itself burned per request, on the same cores as the server. ``target`` shows the goals of issue 5
where one applies.
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


def target_for(result: LoadResult) -> Target | None:
    """The issue's goal for this load, if it has one."""
    group, concurrency = result.load.group, result.load.concurrency
    if group == "1" and concurrency == 32:
        return Target("ratio >= 0.90", throughput_ratio, 0.90)
    if group == "1" and concurrency == 1:
        return Target("Δp50 <= 3 ms", p50_delta_ms, 3.0, at_most=True)
    if group == "2":
        return Target("ratio >= 0.95", throughput_ratio, 0.95)
    if group == "3" and concurrency == 1:
        return Target("p50/ref <= 1.15", p50_ratio, 1.15, at_most=True)
    return None


HEADER = ("load", "sent per request", "conc", "requests", "texts/s", "p50 ms", "p99 ms", "ref texts/s",
          "ratio", "ref p50 ms", "p50/ref", "Δp50 ms", "client CPU ms/req", "target")


def row(result: LoadResult, reference: Reference) -> tuple[str, ...]:
    """One table row; latency comparisons only at concurrency 1."""
    load, single = result.load, result.load.concurrency == 1
    target = target_for(result)
    verdict = ""
    if target:
        verdict = f"{target.text}: {'met' if target.met(result, reference) else 'MISSED'}"
    if result.errors:
        verdict = f"{result.errors} errors ({result.first_error}) {verdict}".strip()
    return (load.group, load.label, str(load.concurrency), str(result.requests), _num(result.texts_per_s),
            _num(result.percentile_ms(50)), _num(result.percentile_ms(99)), _num(reference.texts_per_s),
            f"{throughput_ratio(result, reference):.2f}", _num(reference.p50_ms) if single else "",
            f"{p50_ratio(result, reference):.2f}" if single else "",
            f"{p50_delta_ms(result, reference):+.1f}" if single else "", f"{result.client_cpu_ms:.2f}",
            verdict)


def _num(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def format_report(results: list[LoadResult], references: dict[str, Reference], context: str) -> str:
    """The reference lines, then the results table (Markdown), headed by ``context`` (machine, model)."""
    refs = [(key, _num(ref.texts_per_s), _num(ref.p50_ms), _num(ref.p99_ms), ref.note)
            for key, ref in references.items()]
    parts = [context, "", "In-process reference (sentence-transformers encode):", "",
             markdown_table(("reference", "texts/s", "p50 ms", "p99 ms", "how"), refs), "",
             "Server:", "", markdown_table(HEADER, [row(r, references[r.load.reference]) for r in results])]
    return "\n".join(parts)
