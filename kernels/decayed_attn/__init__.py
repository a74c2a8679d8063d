"""Causal linear attention with a per-token multiplicative decay of the state."""
