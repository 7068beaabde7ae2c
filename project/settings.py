"""This project's settings for the engine: the one file a fork edits to change them."""

# What `fit` trains without --config: a recipe's name, as `--config NAME` finds it ("" for none)
DEFAULT_RECIPE = "cifar10"

# A config picked up without being asked for (a run folder's config.yaml, the config stored in a checkpoint)
# may name classes of this package, torch, torchvision, lightning and torchmetrics, each only at a key that
# builds its kind (a net at model.net, a Callback in trainer.callbacks: docs/hostile-input.md). Packages listed
# here are trusted as well: a fork that trains timm's nets adds "timm", so that a run made with one can be
# tested and predicted with from its checkpoint alone. A package listed here runs code from any run you are
# handed, so list only what you would install and import yourself.
TRUSTED_PACKAGES: tuple[str, ...] = ()

# Functions that build a net, which such a config may name where a net goes (model.init_args.net), besides
# torchvision's model builders and timm.create_model (the latter once "timm" is trusted above): "module.name",
# or "module.*" for every builder a library registers. Classes need no entry: any nn.Module class is a net.
NET_BUILDERS: tuple[str, ...] = ()
