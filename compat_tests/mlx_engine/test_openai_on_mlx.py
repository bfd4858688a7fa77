"""The OpenAI embeddings compat tests, unchanged, on the MLX engine."""

from compat_tests.test_openai_embeddings import *  # noqa: F403
from compat_tests.test_openai_errors import *  # noqa: F403
from compat_tests.test_openai_integrations import *  # noqa: F403
