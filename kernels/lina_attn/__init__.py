"""LINA attention: bidirectional linear attention with division normalisation."""
