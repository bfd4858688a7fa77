"""The OpenAPI document (``/schema/openapi.json``) describes every route's request and response bodies.

Swagger UI builds its "Try it out" template from an operation's request schema, and client generators
their models from both: a POST route without them (the rerank routes read their body themselves) or with a
200 body documented as a bare ``string`` (routes answering encoded bytes) is a gap. The documented shapes
are also checked against the server: a body made from each documented request schema's required fields
is answered 200, with a body that validates against the documented 200 schema.
"""

from __future__ import annotations

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from compat_tests.conftest import DEFAULT_MODEL

# Routes whose request body is not JSON and not generated here: an image file is needed.
MULTIPART = {"/embed/image", "/embed/multimodal"}
# A made-up text and values that every generic body field accepts.
SAMPLE = {"string": "a cat sits on the mat", "integer": 1, "number": 0.5, "boolean": True}
# Fields whose generic value would be refused: the served model, and known names (values the schema gives).
FIELD_VALUES = {
    "model": DEFAULT_MODEL,
    "query_embeddings": [[1.0, 0.0]],
    "candidate_embeddings": [[1.0, 0.0], [0.0, 1.0]],
}
# Optional fields sent too: a route needs one of several (the schema cannot say "one of these"), and
# Ollama's routes need a model (its clients always send one).
ONE_OF_OPTIONAL = {"texts", "passages", "prompt", "input", "model"}


@pytest.fixture(scope="module")
def document(server) -> dict:
    response = httpx.get(f"{server.url}/schema/openapi.json", timeout=30)
    assert response.status_code == 200
    return response.json()


def operations(document: dict, method: str) -> list[tuple[str, dict]]:
    return [(path, item[method]) for path, item in document["paths"].items() if method in item]


def resolve(document: dict, schema: dict) -> dict:
    """A schema with a top-level ``$ref`` into ``#/components/schemas`` replaced by its target."""
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_the_document_is_valid_openapi(document):
    """The hand-made request and response schemas keep the document valid OpenAPI 3.1."""
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_post_route_documents_its_request_and_200_bodies(document):
    posts = operations(document, "post")
    assert len(posts) >= 25  # every dialect's POST routes are in the document (25 today)
    gaps = []
    for path, operation in posts:
        bodies = (operation.get("requestBody") or {}).get("content") or {}
        bodiless = path.startswith("/admin/")  # the admin API's actions take no body (docs/lifecycle.md)
        if not bodiless and not any(media.get("schema") for media in bodies.values()):
            gaps.append(f"POST {path}: no request body schema")
        answer = ((operation.get("responses") or {}).get("200") or {}).get("content") or {}
        schema = (answer.get("application/json") or {}).get("schema")
        if not schema or resolve(document, schema) == {"type": "string"}:
            gaps.append(f"POST {path}: 200 body is {schema!r}, not its JSON shape")
    assert not gaps, "\n".join(gaps)


def test_rerank_routes_offer_every_dialects_body(document):
    """The issue's case: Swagger offered no template for ``/v1/rerank``, ``/v2/rerank``, ``/rerank``."""
    for path in ("/v1/rerank", "/v2/rerank", "/rerank"):
        schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        shapes = [set(alternative["required"]) for alternative in schema["anyOf"]]
        assert {"query", "documents"} in shapes  # Cohere v1/v2, Jina, Voyage
        assert {"query", "texts"} in shapes  # TEI (told apart by its `texts`)


def example(document: dict, schema: dict, name: str = "") -> object:
    """A value for ``schema`` built from its required fields (and ``ONE_OF_OPTIONAL`` ones): the fields
    Swagger's template shows, filled in as a user would."""
    if name in FIELD_VALUES:
        return FIELD_VALUES[name]
    schema = resolve(document, schema)
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return example(document, schema[key][0], name)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        properties = schema.get("properties", {})
        wanted = [*schema.get("required", []), *(sorted(ONE_OF_OPTIONAL & set(properties)))]
        return {field: example(document, properties[field], field) for field in dict.fromkeys(wanted)}
    if kind == "array":
        return [example(document, schema.get("items", {"type": "string"}), name)] * 2
    return SAMPLE[kind]


@pytest.mark.parametrize("path", [
    "/v1/rerank", "/v2/rerank", "/rerank", "/v1/embeddings", "/v1/embed", "/v2/embed", "/embed",
    "/v1/multimodalembeddings", "/api/embed", "/api/embeddings", "/api/rerank", "/api/v1/embed/",
    "/api/v1/rerank/", "/api/v1/rerank/batch", "/v1/openai/rerank", "/embed/text", "/similarity",
])
def test_documented_bodies_are_served_as_documented(server, document, path):
    """Each documented request shape (each ``anyOf`` alternative), filled from its required fields, is
    answered 200 with a body that validates against the documented 200 schema."""
    item = document["paths"].get(path) or document["paths"][path.rstrip("/")]
    operation = item["post"]
    request_schema = resolve(document, operation["requestBody"]["content"]["application/json"]["schema"])
    response_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**response_schema, "components": document["components"]})
    for alternative in request_schema.get("anyOf", [request_schema]):
        body = example(document, alternative)
        if path == "/rerank" or "texts" not in body:  # TEI's shape is served on /rerank only
            response = httpx.post(f"{server.url}{path}", json=body, timeout=60)
            assert response.status_code == 200, (body, response.text)
            errors = [error.message for error in validator.iter_errors(response.json())]
            assert not errors, (body, errors[:3])


def test_multipart_routes_document_their_form(document):
    for path in MULTIPART:
        body = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        files = [name for name, field in body["properties"].items() if field.get("format") == "binary"]
        assert files == ["file" if path == "/embed/image" else "image"]
