"""Images from untrusted requests, turned into decoded RGB images under limits.

``load.load_images`` is the entry point: for every ``ImagePart`` of a request it reads the bytes (a data
URI or raw base64 in the request, or, only when an operator enables it, an ``http(s)`` URL fetched under
``fetch.FetchPolicy``), decodes them with Pillow under ``limits.ImageLimits`` off the event loop, and
stores the RGB image in ``ImagePart.image``. File paths and ``file:`` URLs are never opened. Every
refusal is an ``limits.ImageRejected`` (a ``ValueError``) whose message says what was wrong; the serving
layer turns it into a 400 naming the input.

This package imports nothing of the server but ``gateway.inputs``.
"""
