"""`python -m project.cli {fit,validate,test,predict}`: the engine's command line (project/engine/cli.py)."""

from project.engine.cli import entry, main

__all__ = ["entry", "main"]

if __name__ == "__main__":
    entry()
