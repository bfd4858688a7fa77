"""gateway: a local OpenAI/Cohere/Jina/TEI-compatible server for text embeddings and reranking."""

__version__ = "0.1.0"
