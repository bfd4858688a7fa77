"""vLLM's ``POST /classify`` (also ``/v1/classify``) and TEI's ``POST /predict``: class probabilities of
sequence classifiers (``gateway.serving.classify``), each in its own wire format and error shape
(``gateway.protocol.vllm_classify`` / ``vllm``, ``gateway.protocol.tei_predict`` / ``tei``)."""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.http.error_handlers import register_error_format
from gateway.http.offload import offload
from gateway.http.openapi_bodies import documented
from gateway.http.routes.common import cancel_on_disconnect, json_only
from gateway.protocol import tei, tei_predict, vllm, vllm_classify
from gateway.serving import classify as service
from gateway.serving.registry import Registry

CLASSIFY_PATHS = ["/classify", "/v1/classify"]
BIG_RESPONSE_ROWS = 1000  # encode larger answers off the event loop

register_error_format(CLASSIFY_PATHS, vllm.error_body)
register_error_format(["/predict"], tei.error_body)


@post(CLASSIFY_PATHS, status_code=200, before_request=json_only, tags=["vLLM"], summary="Classify (vLLM)",
      operation_class=documented(response=vllm_classify.ClassificationResponse))
async def classify(data: vllm_classify.ClassifyRequest, state: State, request: Request) -> Response[bytes]:
    """Class probabilities of each ``input`` text, with the most probable label."""
    registry: Registry = state.registry
    model = data.model or service.default_classify_model(registry)
    engine, _ = registry.get(model).ready()
    limit = vllm_classify.token_limit(data, engine.spec.max_tokens)
    options = {"truncate": True, "max_tokens": limit, "truncation_side": "left"} if limit else {}
    result = await cancel_on_disconnect(request, service.classify(
        registry, model, vllm_classify.inputs(data), param="input", **options))
    probabilities = service.class_probabilities(result.logits)
    body = await offload(len(probabilities) > BIG_RESPONSE_ROWS, vllm_classify.to_response, probabilities,
                         result.labels, result.model, result.tokens)
    return Response(body, media_type="application/json")


@post("/predict", status_code=200, before_request=json_only, tags=["TEI"], summary="Predict (TEI)",
      operation_class=documented(response=list[tei_predict.Prediction] | list[list[tei_predict.Prediction]],
                                 response_description="every label's score, best first (per input)"))
async def predict(data: tei_predict.PredictRequest, state: State, request: Request) -> Response[bytes]:
    """Scores of every label of a classifier (or a reranker's one label) for a text or a text pair, or for
    each of a batch of them."""
    registry: Registry = state.registry
    inputs, batch = tei_predict.predict_inputs(data.inputs)
    model = data.model or service.default_classify_model(registry, rerankers=True)
    result = await cancel_on_disconnect(request, service.classify(
        registry, model, inputs, truncate=data.truncate, truncation_side=data.truncation_direction.lower(),
        param="inputs"))
    scores = result.logits if data.raw_scores else service.class_probabilities(result.logits)
    body = await offload(len(scores) > BIG_RESPONSE_ROWS, tei_predict.to_response, scores, result.labels,
                         batch)
    return Response(body, media_type="application/json")


ROUTES = [classify, predict]
