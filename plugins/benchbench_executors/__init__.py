"""Built-in executors: where the trials of a sweep run."""
