"""The JAX backend (see plugin.py)."""
