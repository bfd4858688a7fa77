"""vLLM's ``POST /score`` and ``/v1/score``: one score per ``(text_1, text_2)`` pair
(``gateway.serving.scores``: a cross-encoder's sigmoid, a bi-encoder's cosine), in vLLM's wire format and
error shape (``gateway.protocol.vllm_score`` / ``vllm``)."""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.http.error_handlers import register_error_format
from gateway.http.offload import offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only
from gateway.protocol import vllm, vllm_score
from gateway.serving import scores as service

PATHS = ["/score", "/v1/score"]
BIG_RESPONSE_ROWS = 1000  # encode larger answers off the event loop

register_error_format(PATHS, vllm.error_body)


@post(PATHS, status_code=200, before_request=json_only, tags=["vLLM"], summary="Score text pairs (vLLM)",
      operation_class=documented(response=vllm_score.ScoreResponse))
async def score(data: vllm_score.ScoreRequest, state: State, request: Request) -> Response[bytes]:
    """Score each ``text_1`` against its ``text_2`` (1:1, 1:N or N:N)."""
    pairs = vllm_score.pairs(data)
    model = data.model or service.default_score_model(state.registry)
    result = await cancel_on_disconnect(request, service.score_pairs(state.registry, model, pairs))
    body = await offload(len(pairs) > BIG_RESPONSE_ROWS, vllm_score.to_response, result.scores.tolist(),
                         result.model, result.tokens)
    return Response(body, media_type="application/json")


ROUTES = [score]
