"""The net is built from the arguments the user gave (also one equal to a default) plus the data's sizes,
never from defaults carried over from another class (project/engine/sizes.py). Runs on the tests' tiny recipe
and synthetic images, so it holds in a fork without our examples."""

import pytest
import torch
import yaml

from project.engine.cli import main
from project.engine.sizes import NetSpec, SizeMismatchError, net_args_given
from tests.extras import needs_extra
from tests.image_tree import write_image_tree
from tests.recipes import TINY, tiny_args


def _yaml(content: dict) -> str:
    return yaml.safe_dump(content)


@pytest.mark.parametrize(
    ("configs", "args", "expected"),
    [
        ([], ["--config", _yaml({"model": {"net": {"class_path": "a.A", "init_args": {"x": 1}}}})], ("a.A", {"x"})),
        # a class named on the command line starts over: the recipe's arguments were for another class
        ([TINY], ["--model.net", "a.B"], ("a.B", set())),
        ([TINY], ["--model.net=a.B", "--model.net.init_args.y=2", "--model.net.z", "3"], ("a.B", {"y", "z"})),
        # the same class keeps what was given for it, and adds to it
        ([TINY], ["--model.net.init_args.hidden=16"], ("tests.recipes.TinyNet", {"in_features", "hidden", "dropout"})),
        ([TINY], ["--model.net", _yaml({"class_path": "a.C", "init_args": {"w": 1}})], ("a.C", {"w"})),
        ([], [], (None, set())),
    ],
    ids=["config", "class-switch", "switch-then-keys", "same-class", "yaml-value", "nothing"],
)
def test_the_net_arguments_given_are_read_in_order(configs, args, expected):
    assert net_args_given([str(c) for c in configs], ["fit", *args]) == expected


def test_a_switched_class_gets_its_own_defaults_and_the_data_s_sizes(tmp_path):
    """tiny.yaml's TinyNet gives hidden=16; the MLP named on the command line keeps its own (128,)."""
    cli = main(["fit", *tiny_args(tmp_path, 1), "--model.net=project.models.MLP", "--trainer.fast_dev_run=1"])
    assert cli.model.hparams.net["init_args"] == {"num_outputs": 3, "in_features": 8}
    assert cli.model.net.layers[0].out_features == 128


def test_a_given_value_equal_to_the_default_is_used_and_refused_against_the_data(tmp_path):
    net = "--model.net=tests.tabular.MLP"  # in_features=1 by default
    five = "--data.source.init_args.features=5"
    cli = main(["fit", *tiny_args(tmp_path, 1), net, five, "--trainer.fast_dev_run=1"])
    assert cli.model.net.in_features == 5, "MLP's default 1 was not given: the data's 5 is used"
    given = "--model.net.init_args.in_features=1"  # the default, given
    with pytest.raises(SizeMismatchError, match=r"in_features=1 contradicts the data .*in_features=5"):
        main(["fit", *tiny_args(tmp_path, 1), net, given, five, "--trainer.fast_dev_run=1"])


def test_a_feature_file_with_other_columns_than_the_net_is_one_line_naming_both(tmp_path):
    for split in ("train", "test"):
        torch.save({"features": torch.randn(40, 30), "labels": torch.arange(40) % 2}, tmp_path / f"{split}.pt")
    config = {
        "model": {"net": {"class_path": "project.models.MLP", "init_args": {"in_features": 16}}},
        "data": {
            "class_path": "project.engine.data.InMemoryDataModule",
            "init_args": {
                "source": {
                    "class_path": "project.engine.data.FeatureFiles",
                    "init_args": {"train": str(tmp_path / "train.pt"), "test": str(tmp_path / "test.pt")},
                },
                "batch_size": 8,
            },
        },
    }
    args = ["fit", f"--config={TINY}", "--config", _yaml(config), *tiny_args(tmp_path, 1)[1:]]
    with pytest.raises(SizeMismatchError, match=r"in_features=16 contradicts .*in_features=30") as err:
        main(args)
    assert "\n" not in str(err.value)
    # without the hard-coded 16, the net is built for the file's 30 columns
    config["model"]["net"]["init_args"] = {}
    cli = main(
        ["fit", f"--config={TINY}", "--config", _yaml(config), *tiny_args(tmp_path, 1)[1:], "--trainer.fast_dev_run=1"]
    )
    assert cli.model.net.layers[0].in_features == 30


def test_a_net_without_size_arguments_that_does_not_fit_the_data_is_one_line(tmp_path):
    net = {"class_path": "torchvision.ops.MLP", "init_args": {"in_channels": 4, "hidden_channels": [3]}}
    with pytest.raises(SizeMismatchError, match=r"in_channels=4\) does not fit the data's inputs of shape \(B, 8\)"):
        main(["fit", *tiny_args(tmp_path, 1), "--config", _yaml({"model": {"net": net}}), "--trainer.fast_dev_run=1"])


IMAGES = {
    "class_path": "project.engine.data.ImageDataModule",
    "init_args": {
        "source": {"class_path": "project.engine.data.ImageFolder", "init_args": {"root": None, "image_size": 32}},
        "batch_size": 4,
        "val_size": 2,
    },
}


@pytest.mark.parametrize(
    "net",
    [
        # a builder function, as torchvision's below, through timm's registry
        pytest.param(
            ["--model.net=timm.create_model", "--model.net.init_args.model_name=resnet10t"], marks=pytest.mark.slow
        ),
        [
            "--model.net=timm.models.vision_transformer.VisionTransformer",
            *("--model.net.init_args.depth=1", "--model.net.init_args.embed_dim=16"),
            *("--model.net.init_args.num_heads=2", "--model.net.init_args.patch_size=8"),
        ],
        ["--model.net=torchvision.models.resnet18"],
    ],
    ids=["timm.create_model", "timm-VisionTransformer", "torchvision-resnet18"],
)
def test_any_network_trains_on_images_from_the_command_line(net, tmp_path):
    if net[0].startswith("--model.net=timm"):
        needs_extra("timm")
    root = write_image_tree(tmp_path / "images", classes=("a", "b"), per_class=4)
    source = {"class_path": "project.engine.data.ImageFolder", "init_args": {"root": str(root), "image_size": 32}}
    data = _yaml({"data": {**IMAGES, "init_args": {**IMAGES["init_args"], "source": source}}})
    # over the tiny recipe, whose TinyNet arguments must not reach the new class
    cli = main(["fit", *tiny_args(tmp_path, 1), "--config", data, *net, "--trainer.fast_dev_run=1"])
    assert cli.trainer.global_step == 1
    assert cli.model.net.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 2)
    assert cli.model.hparams.net["init_args"]["num_classes"] == 2


def test_a_net_spec_builds_only_from_what_was_given():
    spec = NetSpec("torchvision.models.resnet18", {})
    net = spec.build({"num_classes": 4, "in_channels": 3, "img_size": 32})
    assert net.fc.out_features == 4 and spec.config()["init_args"] == {"num_classes": 4}
