"""A PyTorch Lightning template: data in `project.data`, networks in `project.models`, the training step in
`project.classifier`, callbacks in `project.callbacks`, the command line in `project.cli`, user errors in
`project.errors`, every private Lightning/torch API used in `project.internals`."""

from project.former_names import alias_former_names

# The package's names before `python -m project.fork rename`: they import as this package, so checkpoints
# and run configs written under an old name still load.
FORMER_NAMES = ()
alias_former_names(__name__, FORMER_NAMES)
