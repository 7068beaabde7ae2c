"""This project's settings for the engine: the one file a fork edits to change them."""

# What `fit` trains without --config: a recipe's name, as `--config NAME` finds it ("" for none)
DEFAULT_RECIPE = "cifar10"
