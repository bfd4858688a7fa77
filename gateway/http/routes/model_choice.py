"""Which model a request gets when it names none, on the seed projects' routes (embed-rerank, tkr-embed):
the first served embedding model that can embed the input's modality, among those the request's API key
may use."""

from __future__ import annotations

from gateway.errors import InvalidRequest, NotReady
from gateway.serving import request_context
from gateway.serving.multimodal import served_modalities
from gateway.serving.registry import Registry, ServedModel


def first_model(registry: Registry, modality: str = "text", *, fuses: bool = False) -> str:
    """The first embedding model that embeds ``modality`` (and fuses text and image into one vector when
    ``fuses``). A model whose modalities are not known yet (still loading) counts as text-only.

    Raises:
        NotReady: none can yet, but a model still loading might (503).
        InvalidRequest: no served model can (400, naming what is missing).
    """
    visible = set(request_context.visible_names(registry.names))
    usable = [m for m in registry.models if m.name in visible] or registry.models
    for served in usable:
        if served.config.task == "embed" and modality in (served_modalities(served) or ["text"]):
            if not fuses or _fuses(served):
                return served.name
    wanted = "fuses a text and an image into one vector" if fuses else f"embeds {modality} inputs"
    if any(m.config.task == "embed" and m.state == "loading" for m in usable):
        raise NotReady(f"no loaded model {wanted} yet; models are still loading")
    raise InvalidRequest(f"no served model {wanted}; name one with 'model'", param="model")


def _fuses(served: ServedModel) -> bool:
    return served.engine is not None and served.engine.spec.fuses
