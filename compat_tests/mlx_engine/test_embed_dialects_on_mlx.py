"""The Cohere embed and TEI compat tests, unchanged, on the MLX engine."""

from compat_tests.test_cohere_embed import *  # noqa: F403
from compat_tests.test_tei import *  # noqa: F403
