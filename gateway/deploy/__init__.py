"""Serving the gateway on a Ray cluster with Ray Serve (``pip install ".[ray]"``; ``gateway serve --ray``).

Nothing here is imported by a plain ``gateway serve``; modules import ``ray`` only inside functions, so
the package itself imports without it.
"""
