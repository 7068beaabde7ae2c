"""`python -m project.sweep`: hyperparameter search with Optuna (project/engine/sweep/)."""

import sys

from project.engine.sweep.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
