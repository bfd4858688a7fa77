"""Vision-language embedders served for real, driven through the client SDKs (text inputs).

Tiny random Qwen2-VL (Ops-MM-embedding-v1 layout) and Qwen3-VL-Embedding folders are served from a TOML
file that names only their source: the folders are detected as vision-language embedders. The vectors
must equal the model cards' reference pipelines (``tests/vlm_reference.py``), with each API's query /
document input type mapped onto the model's instruction (its system message), not prefixed to the text.
"""

from __future__ import annotations

import cohere
import httpx
import numpy as np
import openai
import pytest

from compat_tests.server import run_server
from tests.tiny_vlm import build_tiny_qwen2_vl, build_tiny_qwen3_vl
from tests.vlm_reference import Reference

OPS_MM, QWEN3 = "tiny-ops-mm", "tiny-qwen3-vl-embedding"
QUERY = "Which slide shows revenue by region?"
DOCUMENTS = ["Quarterly revenue by region, as a bar chart", "A recipe for banana bread",
             "Revenue grew in every region this quarter"]
FIND_IMAGE = "Find an image that matches the given text."
QWEN3_QUERY = "Retrieve images or text relevant to the user's query."  # the model card's query instruction


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm-models")
    return {OPS_MM: build_tiny_qwen2_vl(root / "ops-mm"), QWEN3: build_tiny_qwen3_vl(root / "qwen3-vl")}


@pytest.fixture(scope="module")
def references(folders):
    return {OPS_MM: Reference(str(folders[OPS_MM]), "ops-mm"),
            QWEN3: Reference(str(folders[QWEN3]), "qwen3-vl")}


@pytest.fixture(scope="module")
def vlm_server(tmp_path_factory, folders):
    workdir = tmp_path_factory.mktemp("vlm-server")
    # float32, so that vectors compare with the fp32 reference to 1e-5; nothing says "vision-language"
    (workdir / "gateway.toml").write_text(
        f'[[models]]\nname = "{OPS_MM}"\nsource = "{folders[OPS_MM]}"\ndtype = "float32"\n'
        f'query_prompt = "{FIND_IMAGE}"\n\n'
        f'[[models]]\nname = "{QWEN3}"\nsource = "{folders[QWEN3]}"\ndtype = "float32"\n'
    )
    args = ["--config", str(workdir / "gateway.toml"), "--engine", "torch"]
    with run_server(workdir, args=args) as running:
        yield running


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def test_openai_sdk_gets_the_reference_vectors(vlm_server, references):
    client = openai.OpenAI(base_url=vlm_server.openai_base, api_key="x")
    for name in (OPS_MM, QWEN3):
        response = client.embeddings.create(model=name, input=DOCUMENTS)  # base64 float32 by default
        for row, text in zip(response.data, DOCUMENTS, strict=True):
            np.testing.assert_allclose(row.embedding, unit(references[name].embed(text)), atol=1e-5)
        assert response.usage.prompt_tokens == sum(
            len(references[name].processor(text=[references[name].prompt(t, [], None)])["input_ids"][0])
            for t in DOCUMENTS)


def test_cohere_input_types_select_the_instruction(vlm_server, references):
    co = cohere.ClientV2(base_url=vlm_server.url, api_key="x")
    reference = references[QWEN3]
    query = co.embed(model=QWEN3, texts=[QUERY], input_type="search_query", embedding_types=["float"])
    expected = unit(reference.embed(QUERY, [], QWEN3_QUERY))
    np.testing.assert_allclose(query.embeddings.float_[0], expected, atol=1e-5)
    document = co.embed(model=QWEN3, texts=[QUERY], input_type="search_document", embedding_types=["float"])
    np.testing.assert_allclose(document.embeddings.float_[0], unit(reference.embed(QUERY)), atol=1e-5)
    configured = co.embed(model=OPS_MM, texts=[QUERY], input_type="search_query", embedding_types=["float"])
    np.testing.assert_allclose(configured.embeddings.float_[0],
                               unit(references[OPS_MM].embed(QUERY, [], FIND_IMAGE)), atol=1e-5)


def test_tei_prompt_names_are_instructions(vlm_server, references):
    body = {"model": QWEN3, "inputs": [QUERY], "prompt_name": "query"}
    rows = httpx.post(f"{vlm_server.url}/embed", json=body, timeout=60).json()
    expected = unit(references[QWEN3].embed(QUERY, [], QWEN3_QUERY))
    np.testing.assert_allclose(rows[0], expected, atol=1e-5)


def test_rerank_embeds_query_and_documents_with_their_instructions(vlm_server, references):
    reference = references[QWEN3]
    query = unit(reference.embed(QUERY, [], QWEN3_QUERY))
    cosines = [float(query @ unit(reference.embed(text))) for text in DOCUMENTS]
    response = cohere.ClientV2(base_url=vlm_server.url, api_key="x").rerank(
        model=QWEN3, query=QUERY, documents=DOCUMENTS)
    assert [r.index for r in response.results] == list(np.argsort(cosines)[::-1])
    for result in response.results:
        assert result.relevance_score == pytest.approx((cosines[result.index] + 1) / 2, abs=1e-5)


def test_models_route_and_errors(vlm_server, references):
    client = openai.OpenAI(base_url=vlm_server.openai_base, api_key="x", max_retries=0)
    assert {OPS_MM, QWEN3} <= {model.id for model in client.models.list()}
    with pytest.raises(openai.BadRequestError, match="reserved for images"):
        client.embeddings.create(model=OPS_MM, input=["a text with <|image_pad|> in it"])
    image_pad = references[OPS_MM].processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    body = {"model": OPS_MM, "inputs": [[1, 2, image_pad]]}
    tei = httpx.post(f"{vlm_server.url}/embed", json=body, timeout=60)
    assert tei.status_code == 400 and "need an image" in tei.json()["error"]
    assert httpx.get(f"{vlm_server.url}/ready", timeout=10).status_code == 200
    assert len(client.embeddings.create(model=OPS_MM, input="still serving").data[0].embedding) == 64
