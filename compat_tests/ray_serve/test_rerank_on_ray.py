"""The Cohere rerank compat tests (v1, v2, raw bodies), unchanged, against the gateway on Ray Serve."""

from compat_tests.test_rerank_cohere import *  # noqa: F403
