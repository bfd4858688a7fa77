"""One set of options from the OpenAI route's four vocabularies: OpenAI, Voyage, Jina and Mistral.

Each option may come from more than one field; a request that gives two different values for one option
(``dimensions: 64`` with ``output_dimension: 128``, ``output_dtype: "int8"`` with ``embedding_type:
"binary"``, ``input_type`` with ``task``, ``truncation`` with a different ``truncate``) is a 400 naming
the second field, never a silent choice.

    option        fields
    dimensions    dimensions (OpenAI, Jina), output_dimension (Voyage, Mistral)
    dtype         output_dtype (Voyage, Mistral), embedding_type / encoding_type (Jina), encoding_format
                  int8 / uint8 / binary / ubinary (our OpenAI extension)
    base64        encoding_format "base64" (OpenAI, Voyage, Mistral), embedding_type "base64" (Jina)
    prompt        input_type (Voyage), task (Jina)
    truncate      truncation (Voyage), truncate (Jina); absent: the model's policy
    normalize     normalized (Jina); absent: what the model does

Errors on the route also carry ``detail`` (``error_body``): Voyage's SDK and Jina's clients read it, the
OpenAI and Mistral SDKs read ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from gateway.errors import GatewayError, InvalidRequest
from gateway.protocol import jina, openai, voyage
from gateway.protocol.openai import EmbeddingRequest
from gateway.protocol.quantization import PRECISIONS


@dataclass(slots=True)
class EmbeddingOptions:
    """What a ``/v1/embeddings`` request asks for, in the service's terms.

    Attributes:
        dimensions / dimensions_param: Matryoshka size (None: native) and the field it came from.
        dtype / dtype_param: ``float`` or a quantized format, and the field it came from.
        base64: rows as base64 of their little-endian bytes in ``dtype``.
        prompt_names: model prompts to try, first found wins (empty: no prompt).
        truncate: True cuts long inputs, False rejects them, None follows the model's policy.
        normalize: True L2-normalizes, False returns the raw vectors, None does what the model does.
        late_chunking: embed the inputs as one sequence, pooled per input (``gateway.protocol.jina``).
    """

    dimensions: int | None = None
    dimensions_param: str = "dimensions"
    dtype: str = "float"
    dtype_param: str = "encoding_format"
    base64: bool = False
    prompt_names: tuple[str, ...] = ()
    truncate: bool | None = None
    normalize: bool | None = None
    late_chunking: bool = False


# the fields of the other APIs: a request with none of them (the hot path) is plain OpenAI
DIALECT_FIELDS = ("output_dtype", "embedding_type", "encoding_type", "output_dimension", "input_type", "task",
                  "truncation", "truncate", "normalized", "late_chunking")
_dialect_values = attrgetter(*DIALECT_FIELDS)
_NONE = (None,) * len(DIALECT_FIELDS)


def resolve(request: EmbeddingRequest) -> EmbeddingOptions:
    """Merge the request's fields into options.

    Raises:
        InvalidRequest: two fields give different values for one option (param: the second field).
    """
    if _dialect_values(request) == _NONE:
        fmt = request.encoding_format
        return EmbeddingOptions(dimensions=request.dimensions, dtype=fmt if fmt in PRECISIONS else "float",
                                base64=fmt == "base64")
    jina_types = {"embedding_type": request.embedding_type, "encoding_type": request.encoding_type}
    quantized = request.encoding_format if request.encoding_format in PRECISIONS else None
    dtype, dtype_param = _one_of("float", "encoding_format", [
        ("encoding_format", quantized),
        ("output_dtype", request.output_dtype),
        *((field, None if value == "base64" else value) for field, value in jina_types.items()),
    ])
    dimensions, dimensions_param = _one_of(None, "dimensions", [
        ("dimensions", request.dimensions), ("output_dimension", request.output_dimension),
    ])
    truncate, _ = _one_of(None, "truncation", [("truncation", request.truncation),
                                               ("truncate", request.truncate)])
    if request.input_type is not None and request.task is not None:
        raise InvalidRequest("send one of 'input_type' (Voyage) and 'task' (Jina), not both", param="task")
    prompts = jina.prompt_names(request.task) if request.task else ()
    if request.input_type is not None:
        prompts = (voyage.PROMPT_NAMES[request.input_type],)
    return EmbeddingOptions(
        dimensions=dimensions, dimensions_param=dimensions_param, dtype=dtype, dtype_param=dtype_param,
        base64="base64" in (request.encoding_format, *jina_types.values()), prompt_names=prompts,
        truncate=truncate, normalize=request.normalized, late_chunking=bool(request.late_chunking),
    )


def _one_of(default, default_param: str, candidates: list[tuple[str, object]]) -> tuple[object, str]:
    """The one value the given fields agree on, and the first field giving it (default when none does).

    Raises:
        InvalidRequest: two fields give different values.
    """
    given = [(field, value) for field, value in candidates if value is not None]
    for field, value in given[1:]:
        if value != given[0][1]:
            raise InvalidRequest(
                f"'{field}' ({value!r}) contradicts '{given[0][0]}' ({given[0][1]!r}); send one of them",
                param=field,
            )
    return (given[0][1], given[0][0]) if given else (default, default_param)


def error_body(error: GatewayError) -> dict:
    """OpenAI's ``{"error": {...}}`` plus ``detail`` (the message), for Voyage's and Jina's clients."""
    return {**openai.error_body(error), "detail": error.message}
