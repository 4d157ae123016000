"""Built-in metrics, computed once in numpy for every backend."""
