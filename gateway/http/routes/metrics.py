"""``GET /metrics``: the app's Prometheus metrics (see ``gateway.http.metrics``).

Protected like every route by the API keys, or by ``metrics_api_key`` alone when that is set.
"""

from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST


@get("/metrics", tags=["Operations"], summary="Prometheus metrics", sync_to_thread=False)
def metrics(state: State) -> Response[bytes]:
    """Every metric in the Prometheus text exposition format."""
    # as a header, not ``media_type``: Litestar appends "; charset=utf-8" to text/ media types, and
    # prometheus-client's type already ends with it (the header read "charset=utf-8" twice)
    return Response(state.metrics.render(), headers={"content-type": CONTENT_TYPE_LATEST})


ROUTES = [metrics]
