"""K-fold cross-validation of any recipe: `python -m project.crossval --help`.

study.py runs the folds (each a normal `fit` then `test` through the CLI) and resumes an interrupted
study; results.py reads the folds' records and writes the summary (crossval.csv, crossval.json).
The folds themselves are the data module's (`data.fold`, `data.num_folds`; project/data/folds.py).
"""
