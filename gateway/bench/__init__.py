"""``gateway bench``: the server against the in-process sentence-transformers reference, on one corpus.

Modules: ``corpus`` (stdlib docstrings), ``reference`` (in-process ``encode``), ``loads`` (what each
load sends), ``client`` (the async aiohttp load generator), ``server`` (start one, or use ``--url``),
``report`` (the table) and ``run`` (the command). ``locustfile.py`` drives the same loads with locust.
"""
