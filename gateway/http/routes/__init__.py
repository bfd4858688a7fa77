"""Thin HTTP handlers: decode the wire request, call the service, convert the result back."""
