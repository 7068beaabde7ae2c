"""Our examples, one folder each with its source, nets, recipes, presets, search spaces, tests and
benchmarks. `python -m project.fork remove-examples` deletes these folders; nothing else imports them."""
