"""The engine: everything a run needs whatever its task (command line, recipes, run folders, exact resume,
trust, checkpoints, signals, loaders, generic DataModules, always-on callbacks, sweep, cross-validation).
It imports nothing from project/tasks/ or project/examples/ (tests/test_architecture.py holds that)."""
