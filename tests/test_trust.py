"""Configs picked up without being asked for (a run folder's config.yaml, a checkpoint's hyperparameters)
may only name classes and callables DEFINED in the trusted packages: trust goes by what a name resolves
to, so a trusted package's re-export of `os`, `subprocess`, `builtins`, `importlib` or `shutil` is refused
(project/engine/trust.py)."""

import pytest

from project.engine.trust import PROJECT_PACKAGE, TRUSTED_PACKAGES, UntrustedConfigError, check_trusted

REFUSED = [
    "torch.os.system",  # the bypass: torch re-exports os
    "torch.os",
    "torch.sys.modules",
    "torch.hub.sys",
    "torchvision.datasets.utils.os.system",
    "lightning.pytorch.cli.os",
    "lightning.pytorch.cli.os.system",
    "torch.serialization.pickle.loads",
    "torch.hub.load",  # downloads and runs a repository's code
    "torch.load",  # unpickles
    "torch.utils.cpp_extension.load_inline",
    "lightning.fabric.utilities.cloud_io.fsspec",
    "torch.__builtins__",
    "torch.nn.Module.__init__.__globals__",
    "os.system",
    "subprocess.run",
    "builtins.eval",
    "importlib.import_module",
    "shutil.rmtree",
    "tests.recipes.TinyNet",
]
ACCEPTED = [
    "torch.optim.SGD",
    "torch.optim.lr_scheduler.OneCycleLR",
    "torch.nn.functional.relu",
    "torch.relu",
    "torchvision.models.resnet18",
    "torchmetrics.Accuracy",
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.callbacks.LambdaCallback",
    f"{PROJECT_PACKAGE}.engine.data.InMemoryDataModule",
    f"{PROJECT_PACKAGE}.tasks.classification.ConfusionMatrixImage",
]


@pytest.mark.parametrize("name", REFUSED)
@pytest.mark.parametrize("key", ["class_path", "on_test_start"])
def test_a_name_resolving_outside_the_trusted_packages_is_refused(name, key):
    config = {"trainer": {"callbacks": [{"class_path": "lightning.pytorch.callbacks.LambdaCallback"}]}}
    config["trainer"]["callbacks"][0].setdefault("init_args", {})[key] = name
    with pytest.raises(UntrustedConfigError, match=rf"Refusing trainer\.callbacks\[0\]\.init_args\.{key}: {name}"):
        check_trusted(config, "rf/config.yaml")


@pytest.mark.parametrize("name", ACCEPTED)
def test_a_name_defined_in_a_trusted_package_is_accepted(name):
    check_trusted({"model": {"net": {"class_path": name}}, "hook": name}, "rf/config.yaml")


def test_a_class_path_that_names_nothing_is_refused_but_a_plain_dotted_string_is_not():
    with pytest.raises(UntrustedConfigError, match=r"Refusing model\.net\.class_path: torch\.no_such_thing"):
        check_trusted({"model": {"net": {"class_path": "torch.no_such_thing"}}}, "rf/config.yaml")
    check_trusted({"trainer": {"logger": {"init_args": {"name": "torch.v2"}}}}, "rf/config.yaml")


def test_the_project_trusts_itself_by_its_own_name():
    """A fork renamed from `project` keeps loading its own runs."""
    assert __import__("project").__name__ == PROJECT_PACKAGE and PROJECT_PACKAGE in TRUSTED_PACKAGES


def test_the_refusal_says_what_a_re_export_is():
    with pytest.raises(UntrustedConfigError, match=r"torch\.os\.system \(it is os's\) from rf/config\.yaml.*--config"):
        check_trusted({"on_test_start": "torch.os.system"}, "rf/config.yaml")
