"""``gateway bench --quick`` end to end (its own server, the default model), and its corpus.

No timing assertions: the table must be produced, every load must have answered, and every number
must parse.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from gateway.bench.cache_load import QUICK_TEXTS
from gateway.bench.corpus import load_corpus

EXPECTED_LOADS = ["1 text, base64", "1 text, float", "256 texts, base64", "rerank 1+20 docs",
                  "rerank 1+100 docs"]


def table_rows(report: str, first_cell: str) -> list[list[str]]:
    """Cells of the Markdown table whose header starts with ``first_cell``."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env = {k: v for k, v in env.items() if not k.startswith("GATEWAY_")}
    done = subprocess.run([sys.executable, "-m", "gateway", "bench", "--quick"], capture_output=True,
                          text=True, env=env, cwd=tmp_path_factory.mktemp("bench"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_quick_bench_prints_the_reference_and_every_load(quick_report: str) -> None:
    references = table_rows(quick_report, "reference")
    assert [row[0] for row in references] == ["short", "batch256", "rerank20", "rerank100"]
    assert all(float(row[1]) > 0 and float(row[2]) > 0 for row in references)

    rows = table_rows(quick_report, "load")
    assert sorted({row[1] for row in rows}) == sorted(EXPECTED_LOADS)
    for row in rows:
        group, _, concurrency, requests, texts_per_s, p50, p99, ref, ratio = row[:9]
        assert int(requests) >= 1 and "errors" not in row[-1], row
        assert float(texts_per_s) > 0 and 0 < float(p50) <= float(p99) and float(ratio) > 0, row
        if concurrency == "1":
            assert row[9] and row[10] and row[11], "concurrency 1 rows compare latency with the reference"
    targets = [row[-1] for row in rows if row[-1]]
    assert targets and all(t.endswith((": met", ": MISSED")) for t in targets)
    # a lone request is judged against the bare forward pass of one text, measured in the same run
    forward = re.search(r"forward pass alone p50 ([0-9.]+) ms", references[0][4])
    assert forward and float(forward.group(1)) > 0
    lone = [row[-1] for row in rows if row[0] == "1" and row[2] == "1"]
    assert lone and all(t.startswith("p50 - forward@prec <= 2 ms: ") for t in lone)


def test_quick_bench_pairs_lone_requests_with_bare_forward_passes(quick_report: str) -> None:
    line = next(line for line in quick_report.splitlines() if line.startswith("Lone requests paired"))
    figures = re.search(r"\((\d+) one-text base64 requests in blocks of 10 .*, (eager|traced), (\d+) "
                        r"threads?\): server p50 ([\d.]+) ms, forward p50 ([\d.]+) ms, "
                        r"p50 - forward ([+-][\d.]+) ms "
                        r"\(median per text [+-][\d.]+ ms\); p50 - forward <= 2 ms: (met|MISSED)$", line)
    assert figures, line
    count, _, _, server, forward, overhead, verdict = figures.groups()
    assert int(count) == 40 and 0 < float(forward) < float(server), line
    assert abs(float(server) - float(forward) - float(overhead)) < 0.011, line
    assert verdict == ("met" if float(overhead) <= 2 else "MISSED"), line


def test_quick_bench_re_embeds_a_corpus_from_the_cache(quick_report: str) -> None:
    section = quick_report[quick_report.index("Load 4, re-embedding a corpus"):]
    passes = re.search(r"first pass ([\d.]+) s, second pass ([\d.]+) s: ([\d.]+)x faster", section)
    assert passes and all(float(value) > 0 for value in passes.groups()), section
    hits = re.search(r"second pass (\d+) of (\d+); vectors identical to the first pass: yes", section)
    assert hits and hits.group(1) == hits.group(2) == str(QUICK_TEXTS), section


def test_corpus_is_real_text_of_mixed_lengths() -> None:
    corpus = load_corpus()
    assert len(corpus.short) > 1000 and len(corpus.mixed) > 1000 and len(corpus.queries) == 200
    assert len(set(corpus.mixed)) == len(corpus.mixed)  # no repeated sentence
    lengths = sorted(len(text) for text in corpus.mixed)
    assert lengths[len(lengths) // 10] < 80 and lengths[-len(lengths) // 10] > 300  # short and long
    assert set(corpus.queries).isdisjoint(corpus.short)
    assert load_corpus() is corpus  # built once per process


def test_quick_bench_measures_one_text_requests_under_bulk_load(quick_report: str) -> None:
    section = quick_report[quick_report.index("Load 5, interactive requests under bulk load"):]
    latency = re.search(r"p50 (\d+) ms, p95 (\d+) ms \(target p95 < 1000 ms, all 200: (met|MISSED)", section)
    assert latency and 0 < int(latency.group(1)) <= int(latency.group(2)), section
    answers = re.search(r"answers 200: (\d+)", section)
    assert answers and int(answers.group(1)) >= 1, section
    assert re.search(r"bulk requests: answers .*texts/s served", section), section
