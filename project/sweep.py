"""`python -m project.sweep`: hyperparameter search with Optuna (project/engine/sweep/)."""

import sys

from project.engine.errors import USER_ERROR_EXIT, missing_extra

try:
    from project.engine.sweep.__main__ import main
except ImportError as err:  # Optuna is an extra
    if missing_extra(err) is None:
        raise
    print(f"error: python -m project.sweep: {missing_extra(err)}", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT)

if __name__ == "__main__":
    sys.exit(main())
