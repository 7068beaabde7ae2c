"""A PyTorch Lightning template: data in `project.data`, networks in `project.models`, the training
step in `project.classifier`, callbacks in `project.callbacks`, the command line in `project.cli` (a
run's folder in `project.runs`, checkpoint files in `project.checkpoints`, its parser in
`project.parser`), user errors and exit codes in `project.errors` (raise `UserError` and its kind for a
mistake the user can fix: one line, no traceback), and every private
Lightning/torch API the project leans on in `project.internals`."""

from project.former_names import alias_former_names

# The package's names before `python -m project.fork rename`: they import as this package, so checkpoints
# and run configs written under an old name still load.
FORMER_NAMES = ()
alias_former_names(__name__, FORMER_NAMES)
