"""``gateway embed INPUT -o OUTPUT``: every input and output format, vectors equal to sentence-transformers
on the same weights, and ``--resume`` redoing no finished chunk."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gateway.bulk.files import BadInput, read_texts, write_vectors
from gateway.cli import main

TEXTS = [f"text number {i} about {'cats' if i % 2 else 'the stock market'}" for i in range(9)]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    from gateway.engines.sources import embedded_model_dir

    model = SentenceTransformer(str(embedded_model_dir()), device="cpu")
    return model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)


def embed(*args: str) -> None:
    main(["embed", *args, "--quiet"])


def test_a_text_file_embeds_like_sentence_transformers(tmp_path, reference, monkeypatch) -> None:
    monkeypatch.setenv("GATEWAY_DTYPE", "float32")
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS[:4]) + "\n\n" + "\n".join(TEXTS[4:]) + "\n")  # a blank line is skipped
    embed(str(source), "-o", str(tmp_path / "out.npy"), "--chunk", "4")
    vectors = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    assert not (tmp_path / "out.npy.parts").exists()


def test_resume_keeps_the_finished_chunks_and_embeds_only_the_rest(tmp_path, reference, monkeypatch) -> None:
    monkeypatch.setenv("GATEWAY_DTYPE", "float32")
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"text": t, "key": f"k{i}"}) + "\n" for i, t in enumerate(TEXTS)))
    stat = source.stat()
    parts = tmp_path / "out.jsonl.parts"
    parts.mkdir()  # an interrupted run: chunks 0 and 2 (of 3 texts each) are done
    run = {
        "input": str(source.resolve()),
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "model": None,
        "url": None,
        "chunk": 3,
        "dimensions": None,
    }
    (parts / "run.json").write_text(json.dumps(run))
    marker = np.full((3, 384), 7.0, np.float32)  # not a vector the model makes: shows what was kept
    np.save(parts / "0.npy", marker)
    np.save(parts / "2.npy", marker)
    with pytest.raises(SystemExit) as refused:
        embed(str(source), "-o", str(output), "--chunk", "3", "--id-field", "key")
    assert refused.value.code == 2  # without --resume an interrupted run is never overwritten
    embed(str(source), "-o", str(output), "--chunk", "3", "--id-field", "key", "--resume")
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"k{i}" for i in range(9)]
    vectors = np.array([r["embedding"] for r in rows], np.float32)
    np.testing.assert_array_equal(vectors[:3], marker)
    np.testing.assert_array_equal(vectors[6:], marker)
    np.testing.assert_allclose(vectors[3:6], reference[3:6], atol=1e-5)


def test_inputs_by_field_and_column_and_outputs_of_each_type(tmp_path) -> None:
    (tmp_path / "a.csv").write_text('id,body\nx,first text\ny,"second, with a comma"\n')
    assert read_texts(tmp_path / "a.csv", "body", "id") == (
        ["first text", "second, with a comma"],
        ["x", "y"],
    )
    pq.write_table(pa.table({"body": ["p", "q"]}), tmp_path / "a.parquet")
    assert read_texts(tmp_path / "a.parquet", "body") == (["p", "q"], [0, 1])
    (tmp_path / "a.jsonl").write_text('{"body": "one"}\n{"other": 1}\n')
    with pytest.raises(BadInput, match="line 1: no text in 'body'"):
        read_texts(tmp_path / "a.jsonl", "body")
    with pytest.raises(BadInput, match="unknown input type"):
        read_texts(tmp_path / "a.xml")
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_vectors(tmp_path / "o.parquet", vectors, ["x", "y"])
    table = pq.read_table(tmp_path / "o.parquet")
    assert table["id"].to_pylist() == ["x", "y"]
    np.testing.assert_array_equal(np.array(table["embedding"].to_pylist(), np.float32), vectors)
    write_vectors(tmp_path / "o.npy", vectors, [0, 1])
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), vectors)
    assert not list(tmp_path.glob(".*.partial"))
    with pytest.raises(SystemExit) as refused:  # refused before the model loads or anything runs
        embed(str(tmp_path / "a.csv"), "--column", "body", "-o", str(tmp_path / "out.xlsx"))
    assert refused.value.code == 2
