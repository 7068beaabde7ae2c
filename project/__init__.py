"""A PyTorch Lightning template: data in `project.data`, networks in `project.models`, the training
step in `project.classifier`, callbacks in `project.callbacks`, the command line in `project.cli` (a
run's folder in `project.runs`, checkpoint files in `project.checkpoints`), and every private
Lightning/torch API the project leans on in `project.internals`."""
