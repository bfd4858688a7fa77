"""Text helpers shared by every backend: tokenization, windows, pooling, late chunking."""
