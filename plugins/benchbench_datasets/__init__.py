"""Built-in datasets: synthetic densities with exact scores, and real data shipped with scikit-learn."""
