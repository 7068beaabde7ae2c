"""K-fold cross-validation of any recipe (`python -m project.crossval --help`); the folds are the data
module's (`data.fold`, `data.num_folds`; project/engine/data/folds.py)."""
