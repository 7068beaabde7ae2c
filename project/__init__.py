"""A PyTorch Lightning template: data in `project.data`, networks in `project.models`,
the training step in `project.classifier`, the command line in `project.cli`."""
