"""Hyperparameter search with Optuna over any recipe: `python -m project.sweep --help`."""
