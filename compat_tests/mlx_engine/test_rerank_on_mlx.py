"""The rerank compat tests (Cohere v1/v2, integrations, Jina, TEI, errors), unchanged, on the MLX engine."""

from compat_tests.test_rerank_cohere import *  # noqa: F403
from compat_tests.test_rerank_errors import *  # noqa: F403
from compat_tests.test_rerank_integrations import *  # noqa: F403
