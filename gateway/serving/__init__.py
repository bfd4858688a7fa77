"""The serving layer, protocol-neutral: model registry, runners (cross-request batching), embedding and
rerank services, and the per-request context. It never imports Litestar or a protocol module.
"""
