"""The keywords every attention variant is built with (``attention.build(name, dim=, num_heads=,
grid=(h, w), prefix=)``): set by the caller, never by a variant's options."""

GEOMETRY = ("dim", "num_heads", "grid", "prefix")
