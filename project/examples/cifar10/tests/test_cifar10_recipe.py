"""The CIFAR-10 recipe is what `fit` trains without `--config` in the template (settings.DEFAULT_RECIPE)."""

from project.tasks.classification import metrics
from tests.test_cli import _resolved, write_recipe


def test_fit_without_a_config_is_the_cifar10_recipe_and_a_config_replaces_it(tmp_path, capsys):
    default = _resolved([], capsys)
    assert default["model"]["init_args"]["net"]["class_path"] == "project.models.ResNet"
    assert default["data"]["init_args"]["source"]["class_path"] == "project.examples.cifar10.CIFAR10"
    assert default["model"]["init_args"]["scheduler"]["class_path"] == "torch.optim.lr_scheduler.OneCycleLR"
    assert default["checkpoint"]["monitor"] == metrics.VAL_ACC
    own = _resolved(["--config", str(write_recipe(tmp_path))], capsys)
    assert own["data"]["init_args"]["val_size"] == 0.25 and own["model"]["init_args"]["label_smoothing"] == 0.0
    assert own["model"]["init_args"]["scheduler"]["class_path"] == "torch.optim.lr_scheduler.StepLR"
