"""Rerank routes: ``POST /v1/rerank``, ``/v2/rerank`` and ``/rerank``.

Every path takes the Cohere v1 / v2 and Jina shapes (``gateway.protocol.cohere_rerank``) and Voyage's
(``gateway.protocol.voyage``, told apart by ``top_k`` / ``truncation``); ``/rerank`` also takes TEI's body
(``gateway.protocol.tei_rerank``), told apart by its ``texts`` field. Errors use Cohere's ``{"message"}``
shape (with ``detail``, which Jina's and Voyage's clients read), or TEI's for a TEI body.
"""

from __future__ import annotations

import re
from functools import partial
from typing import TypeVar

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.errors import GatewayError, InvalidRequest
from gateway.http.error_handlers import register_error_format
from gateway.http.offload import offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only
from gateway.protocol import cohere_rerank, tei_rerank, voyage
from gateway.protocol.cohere_rerank import RerankRequest
from gateway.protocol.tei_rerank import TeiRerankRequest
from gateway.serving import rerank as service

PATHS = ["/v1/rerank", "/v2/rerank", "/rerank"]
BIG_RESPONSE_ROWS = 1000  # encode larger responses off the event loop
T = TypeVar("T")

register_error_format(PATHS, cohere_rerank.error_body)


@post(
    PATHS,
    status_code=200,
    before_request=json_only,
    tags=["Rerank"],
    summary="Rerank documents (Cohere v1/v2, Jina, Voyage, TEI)",
    operation_class=documented(
        RerankRequest, voyage.RerankRequest, TeiRerankRequest,
        description="Cohere v1/v2 or Jina; Voyage's when it has `top_k`, or `truncation` and no `top_n`; "
        "TEI's (on `/rerank` only) when it has `texts` and no `documents`.",
        response=cohere_rerank.RerankResponse | voyage.RerankResponse | list[tei_rerank.Rank],
        response_description="Cohere's/Jina's results, Voyage's `data`, or TEI's ranks: the body's dialect",
    ),
)
async def rerank(request: Request, state: State) -> Response[bytes]:
    """Rank ``documents`` by relevance to ``query``; results best first with their original ``index``."""
    body = await request.body()
    path = request.url.path.rstrip("/")
    if path == "/rerank" and tei_rerank.is_tei_body(body):
        return await cancel_on_disconnect(request, _rerank_tei(body, state))
    if voyage.is_rerank_body(body):
        return await cancel_on_disconnect(request, _rerank_voyage(body, state))
    data = decode_body(body, RerankRequest)
    texts = cohere_rerank.document_texts(data.documents, data.rank_fields)
    result = await cancel_on_disconnect(request, service.rerank(
        state.registry,
        data.model,
        data.query,
        texts,
        top_n=data.top_n,
        max_chunks_per_doc=data.max_chunks_per_doc,
        max_tokens_per_doc=data.max_tokens_per_doc,
    ))
    content = await offload(
        len(result.results) > BIG_RESPONSE_ROWS,
        _encode_cohere,
        result,
        data,
        "2" if path == "/v2/rerank" else "1",
    )
    return Response(content, media_type="application/json")


def _encode_cohere(result: service.Reranked, data: RerankRequest, api_version: str) -> bytes:
    return cohere_rerank.to_rerank_response(
        [(r.index, r.relevance_score) for r in result.results],
        data.documents,
        return_documents=bool(data.return_documents),
        model=result.model,
        tokens=result.tokens,
        search_units=result.search_units,
        api_version=api_version,
    )


async def _rerank_tei(body: bytes, state: State) -> Response[bytes]:
    """TEI's rerank: sigmoid (or raw) scores of every text, best first; errors in TEI's shape."""
    try:
        data = decode_body(body, TeiRerankRequest)
        model = data.model or service.default_rerank_model(state.registry)
        truncates = state.registry.get(model).config.truncation == "truncate"
        result = await service.rerank(
            state.registry,
            model,
            data.query,
            data.texts,
            param="texts",
            overflow=tei_rerank.overflow_policy(data, truncates),
        )
    except GatewayError as error:
        error.renderer = tei_rerank.error_body
        raise
    ranked = [(r.index, r.raw_score if data.raw_scores else r.relevance_score) for r in result.results]
    content = await offload(
        len(ranked) > BIG_RESPONSE_ROWS, tei_rerank.to_tei_response, ranked, data.texts, data.return_text
    )
    return Response(content, media_type="application/json")


async def _rerank_voyage(body: bytes, state: State) -> Response[bytes]:
    """Voyage's rerank: ``top_k`` best, long inputs truncated (or a 400 with ``truncation: false``)."""
    data = decode_body(body, voyage.RerankRequest)
    if data.top_k is not None and data.top_k <= 0:
        raise InvalidRequest(f"'top_k' must be a positive integer, got {data.top_k}", param="top_k")
    result = await service.rerank(
        state.registry, data.model, data.query, data.documents, top_n=data.top_k,
        overflow="truncate" if data.truncation else "reject",
    )
    ranked = [(r.index, r.relevance_score) for r in result.results]
    content = await offload(len(ranked) > BIG_RESPONSE_ROWS, partial(
        voyage.to_rerank_response, return_documents=bool(data.return_documents), model=result.model,
        tokens=result.tokens), ranked, data.documents)
    return Response(content, media_type="application/json")


def decode_body(body: bytes, type_: type[T]) -> T:
    """Decode a JSON body into ``type_``.

    Raises:
        InvalidRequest: empty or malformed JSON, a missing required field, or a field of the wrong type
            (400; ``param`` names the top-level field).
    """
    if not body.strip():
        raise InvalidRequest("The request body is empty: send a JSON object.")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise _field_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request ({exc}).") from None


def _field_error(message: str) -> InvalidRequest:
    """msgspec's "Expected `int`, got `str` - at `$.top_n`" -> a 400 naming ``top_n``."""
    found = re.fullmatch(r"(.*?)(?: - at `\$\.?(.*)`)?", message, flags=re.DOTALL)
    problem, where = found[1], found[2]
    missing = re.fullmatch(r"Object missing required field `([^`]+)`", problem)
    if missing and not where:
        return InvalidRequest(f"Missing required parameter: '{missing[1]}'.", param=missing[1])
    if not where:
        return InvalidRequest(f"Invalid request body: {problem}")
    return InvalidRequest(f"Invalid value for '{where}': {problem}", param=re.split(r"[.\[]", where)[0])


ROUTES = [rerank]
