"""`python -m project.fork {rename,remove-examples}`: make the fork yours (project/engine/fork.py)."""

import sys

from project.engine.fork import main

if __name__ == "__main__":
    sys.exit(main())
