"""The HTTP layer: the Litestar app, routes, middleware, auth, request log, error handlers, metrics.

Routes decode wire requests with ``gateway.protocol`` and call ``gateway.serving``; nothing here runs a model.
"""
