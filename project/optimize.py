"""`python -m project.optimize`: a recipe's data as LitData chunks, for streaming
(project/engine/data/optimize.py)."""

from project.engine.data.optimize import main
from project.engine.errors import run_command

if __name__ == "__main__":
    run_command(main)
