"""`python -m project.crossval`: k-fold cross-validation (project/engine/crossval/)."""

import sys

from project.engine.crossval.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
