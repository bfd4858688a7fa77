"""Torch backend: sentence-transformers and transformers engines."""
