"""Built-in samplers (Langevin dynamics) per backend."""
