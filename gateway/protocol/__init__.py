"""Wire formats: one module per external spec, msgspec Structs plus pure converters."""
