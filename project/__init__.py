"""A PyTorch Lightning template. The commands a user types are the modules here (`cli`, `sweep`, `crossval`,
`optimize`, `fork`); the machinery that serves any task is `project.engine`; the tasks (LightningModules with their
metrics and views) are `project.tasks`; shared networks are `project.models`; our examples, one folder each, are
`project.examples`; what a fork sets for the engine is `project.settings`."""

from project.engine.former_names import alias_former_names

# The package's names before `python -m project.fork rename`: they import as this package, so checkpoints
# and run configs written under an old name still load.
FORMER_NAMES = ()
alias_former_names(__name__, FORMER_NAMES)
