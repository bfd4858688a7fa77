"""The OpenAI embeddings compat tests, unchanged, against the gateway on Ray Serve."""

from compat_tests.test_openai_embeddings import *  # noqa: F403
