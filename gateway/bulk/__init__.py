"""``gateway embed INPUT -o OUTPUT``: embed a file of texts without a server (or through one, ``--url``),
resumable (``gateway.bulk.parts``)."""
