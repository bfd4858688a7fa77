"""Unit and parity tests for the gateway (a package so tests can share helpers such as ``tiny_models``)."""
