"""Bulk jobs (OpenAI's Batch API): their durable state (``store``) and the worker that runs them
(``worker``)."""
