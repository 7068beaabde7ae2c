"""Hyperparameter search with Optuna over any recipe: `python -m project.sweep --help`.

space.py reads the search space, trial.py runs one trial through the CLI, study.py stores, resumes
and stops the study, results.py ranks the trials and writes the best config.
"""
