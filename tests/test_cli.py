"""The command line as a user runs it, on tiny synthetic recipes of its own: fit, resume, evaluate a
checkpoint (in its run folder or copied anywhere), any network, every logger, the base config, packaging."""

import os
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from project.engine import optim
from project.engine.checkpoints import UnsafeCheckpointError
from project.engine.cli import main
from project.engine.errors import CheckpointError, ConfigError
from project.engine.recipes import shipped, shipped_recipes
from project.engine.run_config import IncompleteCheckpointError
from project.engine.sizes import SizeMismatchError
from project.engine.trust import UntrustedConfigError
from project.tasks.classification import metrics
from tests.conftest import cpu_trainer_args
from tests.extras import needs_extra
from tests.image_tree import write_image_tree
from tests.recipes import classifier, needs_recipe
from tests.source_tree import copy_source_tree
from tests.tabular import write_table

REPO = Path(__file__).resolve().parents[1]


def write_recipe(root: Path, name: str = "shapes") -> Path:
    """A whole recipe of its own: three classes of small images, a small ResNet, SGD, a step schedule."""
    data = root / "shapes"
    if not data.exists():
        write_image_tree(data / "train", per_class=12)
        write_image_tree(data / "test", per_class=4, seed=1)
    recipe = {
        "trainer": {"logger": {"init_args": {"name": name}}, "callbacks": [], "max_epochs": 3},
        "checkpoint": {"monitor": "val/acc", "mode": "max"},
        "model": classifier(
            net={
                "class_path": "project.models.ResNet",
                "init_args": {"widths": [8, 8, 8, 8], "channels_last": False},
            },
            optimizer={
                "class_path": "torch.optim.SGD",
                "init_args": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
            },
            scheduler={"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 2}},
        ),
        "data": {
            "class_path": "project.engine.data.ImageDataModule",
            "init_args": {
                "source": {
                    "class_path": "project.engine.data.ImageFolder",
                    "init_args": {"root": str(data), "image_size": 16},
                },
                "batch_size": 6,
                "val_size": 0.25,
            },
        },
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def cpu(log_dir: Path, epochs: int = 3) -> list[str]:
    return [*cpu_trainer_args(log_dir, epochs), "--trainer.precision=32-true"]


def runs(log_dir: Path, name: str = "shapes") -> list[Path]:
    return sorted((log_dir / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


def scalars(run_dir: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir / "fit"))  # the fit's sub-run (project/engine/runs.py)
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny fit shared by the tests that read its outputs."""
    root = tmp_path_factory.mktemp("fit")
    recipe = write_recipe(root)
    args = ["--config", str(recipe), *cpu(root / "logs", epochs=4)]
    cli = main(["fit", *args, "--checkpoint.save_top_k=-1"])  # keep every epoch's checkpoint
    return root, args, cli


def test_fit_learns_and_logs_to_tensorboard(trained):
    root, _, cli = trained
    run = runs(root / "logs")[0]
    logged = scalars(run)
    assert {metrics.TRAIN_LOSS + "_step", metrics.VAL_LOSS, metrics.VAL_ACC, metrics.TRAIN_ACC} <= logged.keys()
    assert optim.LR in logged, f"no learning rate curve in {sorted(logged)}"
    assert logged[metrics.VAL_ACC][-1] > 0.6, "3 classes: chance is 0.33; the colours are easy"
    assert (run / "config.yaml").is_file(), "the run's exact config must be kept beside its results"
    ckpts = {p.name for p in (run / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(name.startswith("best-") for name in ckpts), ckpts
    assert cli.trainer.checkpoint_callback.monitor == metrics.VAL_ACC
    assert cli.model.net.head.out_features == 3 == cli.model.hparams.num_classes, "the class count is the data's"


def test_resume_continues_from_the_saved_step(trained, tmp_path):
    root, args, _ = trained
    checkpoints = runs(root / "logs")[0] / "checkpoints"
    steps_per_epoch = 27 // 6
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4 * steps_per_epoch
    mid_run = next(checkpoints.glob("best-epoch001-*.ckpt"))
    resumed = main(["fit", *args, f"--trainer.logger.init_args.save_dir={tmp_path}", f"--ckpt_path={mid_run}"])
    assert resumed.trainer.global_step == 4 * steps_per_epoch, "resume must continue, not restart, the step count"
    assert len(scalars(runs(tmp_path)[-1])[metrics.VAL_ACC]) == 2, "only the two remaining epochs are trained"


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_a_checkpoint_copied_anywhere_rebuilds_its_net_and_data(trained, subcommand, tmp_path, monkeypatch):
    """No run folder, no config: the checkpoint's stored hyperparameters rebuild the model and the data."""
    root, _, _ = trained
    copy = shutil.copy(runs(root / "logs")[0] / "checkpoints" / "last.ckpt", tmp_path / "shapes.ckpt")
    monkeypatch.chdir(tmp_path)
    cli = main([subcommand, f"--ckpt_path={copy}", *cpu(tmp_path / "logs")[:-2], "--data.batch_size=4"])
    assert cli.datamodule.batch_size == 4, "a command-line key still wins over the checkpoint"
    assert cli.datamodule.source.root == root / "shapes", "evaluated on the data it was trained on"
    if subcommand == "predict":
        batches = cli.trainer.predict_loop.predictions  # the model's columns: a probability per class
        probs = torch.cat([torch.stack([b[f"p_{c}"] for c in cli.datamodule.classes], 1) for b in batches])
        assert probs.shape == (12, 3) and torch.allclose(probs.sum(1), torch.ones(12))
    else:
        name = metrics.VAL_ACC if subcommand == "validate" else metrics.TEST_ACC
        assert cli.trainer.callback_metrics[name] > 0.6


def test_evaluating_on_other_data_happens_only_when_named(trained, tmp_path):
    root, _, _ = trained
    last = runs(root / "logs")[0] / "checkpoints" / "last.ckpt"
    other = write_image_tree(tmp_path / "five" / "train", classes=("a", "b", "c", "d", "e"), per_class=4)
    write_image_tree(tmp_path / "five" / "test", classes=("a", "b", "c", "d", "e"), per_class=2)
    with pytest.raises(SizeMismatchError, match=r"num_classes=3 contradicts the data .* num_classes=5"):
        main(["test", f"--ckpt_path={last}", f"--data.source.init_args.root={other.parent}", *cpu(tmp_path)[:-2]])


def test_a_checkpoint_without_its_hyperparameters_is_refused_saying_what_is_missing(trained, tmp_path):
    root, _, _ = trained
    ckpt = torch.load(runs(root / "logs")[0] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    del ckpt["datamodule_hyper_parameters"], ckpt["run_config"]  # a checkpoint of another program
    torch.save(ckpt, tmp_path / "bare.ckpt")
    with pytest.raises(IncompleteCheckpointError, match=r"no datamodule_hyper_parameters.*--config"):
        main(["test", f"--ckpt_path={tmp_path / 'bare.ckpt'}"])


def test_a_named_run_folder_takes_its_evaluations_and_resumes(tmp_path):
    """With a named logger version, later commands log into the fit's folder: each evaluation into a sub-run of
    its own with its config; only a second fresh fit into the folder is refused."""
    args = ["--config", str(write_recipe(tmp_path)), *cpu(tmp_path / "logs", 2), "--trainer.logger.init_args.version=a"]
    main(["fit", *args, "--checkpoint.save_top_k=-1"])
    run = tmp_path / "logs" / "shapes" / "a"
    fit_config = (run / "config.yaml").read_text()
    for _ in range(2):  # a repeated evaluation gets a sub-run of its own
        main(["test", f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])  # the run's config names the version
    assert (run / "test" / "config.yaml").is_file() and (run / "test_2" / "config.yaml").is_file()
    assert (run / "config.yaml").read_text() == fit_config
    first_epoch = next((run / "checkpoints").glob("best-epoch000-*.ckpt"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = main(["fit", *args, f"--ckpt_path={first_epoch}"])
    assert resumed.trainer.current_epoch == 2 and (run / "resume_config.yaml").is_file()
    assert not [w for w in caught if "exists and is not empty" in str(w.message)], "a resume's folder holds its run"
    with pytest.raises(ConfigError, match=r"already holds a run"):
        main(["fit", *args])


def test_fit_ckpt_path_last_resumes_the_newest_run_of_that_name_in_its_folder(tmp_path):
    args = ["--config", str(write_recipe(tmp_path)), *cpu(tmp_path / "logs", 1)]
    with pytest.raises(CheckpointError, match=r"no run named shapes under .* has a last\.ckpt"):
        main(["fit", *args, "--ckpt_path=last"])
    main(["fit", *args])
    main(["fit", *args])
    resumed = main(["fit", *args, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step == 2 * (27 // 6)
    assert [p.name for p in runs(tmp_path / "logs")] == ["version_0", "version_1"], "no new run folder"
    assert (runs(tmp_path / "logs")[-1] / "resume_config.yaml").is_file()


# --- the base config and the recipes --------------------------------------------------------------


def _resolved(args: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def _leaves(tree, prefix=""):
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, tree


@pytest.mark.slow  # a parse of each shipped example recipe
@pytest.mark.parametrize("recipe", shipped_recipes())
def test_a_recipe_carries_only_what_it_states_or_the_base_gives(recipe, capsys):
    """Every value of a shipped recipe's resolved config is stated in it, or is what a config naming only
    the same data and net resolves to (the base and the code's defaults): nothing leaks from another recipe."""
    stated = yaml.safe_load(shipped()[recipe].read_text())
    full = _resolved(["--config", recipe], capsys)
    minimal = {"data": stated["data"], "model": classifier(net=stated["model"]["init_args"]["net"])}
    neutral = dict(_leaves(_resolved(["--config", yaml.safe_dump(minimal)], capsys)))
    stated_keys = {key for key, _ in _leaves(stated)}
    for key, value in _leaves(full):
        if key == "config" or value == neutral.get(key, object()):
            continue
        named_class = any(
            key.startswith(k[: -len("class_path")] + "init_args.") for k in stated_keys if k.endswith("class_path")
        )
        assert named_class or any(
            key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in stated_keys
        ), f"{recipe}: {key}={value!r} is neither stated in the recipe nor the base's"
    # what a recipe must name; the optimizer, schedule and callbacks may stay the base's neutral ones
    for key in ("data", "model.class_path", "model.init_args.net"):
        assert any(k == key or k.startswith(key + ".") for k in stated_keys), f"{recipe} must state {key}"


def test_a_config_naming_only_its_task_net_and_data_trains_with_neutral_defaults(tmp_path):
    data = write_image_tree(tmp_path / "shapes" / "train", per_class=6).parent
    write_image_tree(data / "test", per_class=2, seed=1)
    config = {
        "data": {
            "class_path": "project.engine.data.ImageDataModule",
            "init_args": {
                "source": {"class_path": "project.engine.data.ImageFolder", "init_args": {"root": str(data)}}
            },
        },
        "model": classifier(net={"class_path": "project.models.ResNet", "init_args": {"widths": [8, 8, 8, 8]}}),
    }
    args = ["--config", yaml.safe_dump(config), *cpu(tmp_path / "logs", 1), "--data.batch_size=4"]
    cli = main(["fit", *args])
    assert isinstance(cli.trainer.optimizers[0], torch.optim.AdamW) and not cli.trainer.lr_scheduler_configs
    assert cli.model.loss_fn.label_smoothing == 0.0 and cli.trainer.logger.name == "image_folder"
    used = {type(c).__name__ for c in cli.trainer.callbacks}
    recipe_only = {"ConfusionMatrixImage", "MisclassifiedImages", "LogSpectrograms", "PerClassMetrics"}
    recipe_only |= {"TestEmbeddings", "Lookahead", "FreezeParameters"}
    assert not used & recipe_only, f"only the CLI's generic callbacks, got {sorted(used)}"
    main(["test", f"--ckpt_path={runs(tmp_path / 'logs', 'image_folder')[-1] / 'checkpoints' / 'last.ckpt'}"])


@needs_recipe("cifar10")
def test_fit_without_a_config_is_the_cifar10_recipe_and_a_config_replaces_it(tmp_path, capsys):
    default = _resolved([], capsys)
    assert default["model"]["init_args"]["net"]["class_path"] == "project.models.ResNet"
    assert default["data"]["init_args"]["source"]["class_path"] == "project.examples.cifar10.CIFAR10"
    assert default["model"]["init_args"]["scheduler"]["class_path"] == "torch.optim.lr_scheduler.OneCycleLR"
    assert default["checkpoint"]["monitor"] == metrics.VAL_ACC
    own = _resolved(["--config", str(write_recipe(tmp_path))], capsys)
    assert own["data"]["init_args"]["val_size"] == 0.25 and own["model"]["init_args"]["label_smoothing"] == 0.0
    assert own["model"]["init_args"]["scheduler"]["class_path"] == "torch.optim.lr_scheduler.StepLR"


@needs_recipe("fsdd")
def test_a_shipped_recipe_is_named_without_its_path_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _resolved(["--config", "fsdd"], capsys)["trainer"]["logger"]["init_args"]["name"] == "fsdd"
    assert _resolved(["--config", str(shipped()["fsdd"])], capsys)["data"]["class_path"]


def test_optimizer_and_scheduler_are_swappable_from_the_command_line(tmp_path):
    cli = main(
        [
            "fit",
            "--config",
            str(write_recipe(tmp_path)),
            *cpu(tmp_path, epochs=1),
            "--model.optimizer=torch.optim.Adam",
            "--model.optimizer.lr=0.003",
            "--model.scheduler=torch.optim.lr_scheduler.ExponentialLR",
            "--model.scheduler.gamma=0.5",
        ]
    )
    optimizer = cli.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["initial_lr"] == 0.003
    assert isinstance(cli.trainer.lr_scheduler_configs[0].scheduler, torch.optim.lr_scheduler.ExponentialLR)


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("fit", "validate", "test", "predict"))


# --- any network: the data hands its sizes to the net ----------------------------------------------


@pytest.mark.slow  # tests/test_sizes.py trains a builder, and the test below evaluates a torchvision checkpoint
def test_a_torchvision_builder_function_trains_and_its_checkpoint_evaluates(tmp_path, monkeypatch):
    args = [
        "--config",
        str(write_recipe(tmp_path)),
        *cpu(tmp_path / "logs", 1),
        "--model.net=torchvision.models.resnet18",
    ]
    cli = main(["fit", *args])
    assert cli.model.net.fc.out_features == 3, "torchvision's default 1000 is not a value given"
    copy = shutil.copy(runs(tmp_path / "logs")[-1] / "checkpoints" / "last.ckpt", tmp_path / "resnet18.ckpt")
    monkeypatch.chdir(tmp_path)
    tested = main(["test", f"--ckpt_path={copy}"])
    assert tested.model.net.fc.out_features == 3 and metrics.TEST_ACC in tested.trainer.callback_metrics


@pytest.mark.parametrize(
    "net",
    [
        {
            "class_path": "torchvision.models.ResNet",
            "init_args": {"block": "torchvision.models.resnet.BasicBlock", "layers": [1, 1, 1, 1]},
        },
        # slow: a builder from YAML as the ResNet class is, and twice its fits' time
        pytest.param({"class_path": "torchvision.models.mobilenet_v3_small"}, marks=pytest.mark.slow),
    ],
    ids=["ResNet", "mobilenet_v3_small"],
)
def test_torchvision_classes_and_builders_from_yaml_get_the_data_s_class_count(net, tmp_path):
    """torchvision's num_classes=1000 is its default, not a value given: the data's 3 wins, in the fit and
    in the evaluation of its checkpoint from the run folder (whose config.yaml does not state it)."""
    recipe = ["--config", str(write_recipe(tmp_path)), "--config", yaml.safe_dump({"model": {"net": net}})]
    cli = main(["fit", *recipe, *cpu(tmp_path / "logs", 1)])
    assert cli.model.net(torch.zeros(2, 3, 16, 16)).shape == (2, 3)
    tested = main(["test", f"--ckpt_path={runs(tmp_path / 'logs')[-1] / 'checkpoints' / 'last.ckpt'}"])
    assert tested.model.net(torch.zeros(2, 3, 16, 16)).shape == (2, 3)


def test_a_class_count_given_against_the_data_is_refused(tmp_path):
    args = ["--config", str(write_recipe(tmp_path)), *cpu(tmp_path, 0), "--model.net=torchvision.models.resnet18"]
    with pytest.raises(SizeMismatchError, match=r"num_classes=7 contradicts the data"):
        main(["fit", *args, "--model.net.num_classes=7"])


def test_a_tabular_mlp_gets_its_input_features_from_the_data(tmp_path):
    table = write_table(tmp_path / "table.csv", features=7, classes=4)
    config = {
        "data": {"class_path": "tests.tabular.TableDataModule", "init_args": {"path": str(table)}},
        "model": classifier(
            net={"class_path": "tests.tabular.MLP"},
            optimizer={"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}},
        ),
    }
    cli = main(["fit", "--config", yaml.safe_dump(config), *cpu(tmp_path / "logs", 15)])
    assert cli.model.net.in_features == 7 and cli.model.net.layers[-1].out_features == 4
    assert cli.trainer.callback_metrics[metrics.VAL_ACC] > 0.6, "4 classes: chance is 0.25"
    assert cli.trainer.logger.name == "table", "a run named after its data"
    stored = torch.load(runs(tmp_path / "logs", "table")[-1] / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["hyper_parameters"]["net"]["init_args"]["in_features"] == 7, "the checkpoint holds the sizes"
    # tests.tabular is not a trusted package: its config is accepted only when passed explicitly
    last = runs(tmp_path / "logs", "table")[-1] / "checkpoints" / "last.ckpt"
    with pytest.raises(UntrustedConfigError, match=r"tests\.tabular"):
        main(["test", f"--ckpt_path={last}"])
    tested = main(["test", "--config", yaml.safe_dump(config), f"--ckpt_path={last}", *cpu(tmp_path / "logs", 1)])
    assert tested.trainer.callback_metrics[metrics.TEST_ACC] > 0.6


def test_a_net_argument_that_neither_config_nor_data_gives_is_named(tmp_path):
    args = ["--config", str(write_recipe(tmp_path)), *cpu(tmp_path, 0), "--model.net=torch.nn.Linear"]
    with pytest.raises(SizeMismatchError, match=r"torch\.nn\.Linear\) needs in_features, out_features"):
        main(["fit", *args])


# --- configs and checkpoints picked up without being asked for -------------------------------------


def test_an_untrusted_callable_in_a_run_folder_config_is_refused_and_never_runs(trained, tmp_path):
    root, _, _ = trained
    run = tmp_path / "downloaded"
    shutil.copytree(runs(root / "logs")[0], run)
    marker = tmp_path / "marker"
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["trainer"]["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.LambdaCallback", "init_args": {"on_fit_start": "os.system"}},
        {"class_path": "os.system", "init_args": {"command": f"touch {marker}"}},
    ]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(
        UntrustedConfigError, match=r"trainer\.callbacks\[0\]\.init_args\.on_fit_start: os\.system.*--config"
    ):
        main(["test", f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])
    assert not marker.exists()


def test_an_untrusted_class_in_a_checkpoint_s_hyperparameters_is_refused(trained, tmp_path):
    root, _, _ = trained
    ckpt = torch.load(runs(root / "logs")[0] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    ckpt["datamodule_hyper_parameters"]["_class_path"] = "tests.tabular.TableDataModule"
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(UntrustedConfigError, match=r"data\.class_path: tests\.tabular\.TableDataModule"):
        main(["test", f"--ckpt_path={tmp_path / 'other.ckpt'}"])


class _Payload:
    """Unpickling this creates the marker file: what a hostile checkpoint would do, harmlessly."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("force_unsafe", [False, True], ids=["default", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"])
@pytest.mark.parametrize("how", ["path", "file_url", "slurm_requeue"])
def test_every_way_a_checkpoint_is_loaded_refuses_a_payload(trained, how, force_unsafe, tmp_path, monkeypatch):
    root, args, _ = trained
    ckpt = torch.load(runs(root / "logs")[0] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    marker = tmp_path / "marker"
    ckpt["payload"] = _Payload(marker)
    monkeypatch.chdir(tmp_path)
    if force_unsafe:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    if how == "slurm_requeue":  # Lightning resumes hpc_ckpt_N.ckpt in default_root_dir by itself on SLURM
        torch.save(ckpt, tmp_path / "hpc_ckpt_1.ckpt")
        for key, value in {
            "SLURM_NTASKS": "1",
            "SLURM_JOB_NAME": "train",
            "SLURM_JOB_ID": "1",
            "SLURM_NODEID": "0",
            "SLURM_PROCID": "0",
            "SLURM_LOCALID": "0",
            "SLURM_NODELIST": "localhost",
        }.items():
            monkeypatch.setenv(key, value)
        command = [
            "fit",
            *args,
            f"--trainer.default_root_dir={tmp_path}",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
        ]
    else:
        torch.save(ckpt, tmp_path / "payload.ckpt")
        url = f"file://{tmp_path / 'payload.ckpt'}" if how == "file_url" else str(tmp_path / "payload.ckpt")
        command = ["test", f"--ckpt_path={url}", "--config", str(root / "shapes.yaml")]
    with pytest.raises(UnsafeCheckpointError, match=r"pickled Python objects \(\w+\.open\)"):
        main(command)
    assert not marker.exists()


# --- loggers -----------------------------------------------------------------------------------------


# Slow: TensorBoard is every other test's logger, no logger's run folder is quick in tests/test_presets.py, and
# MLflow's store is the slowest to set up
SLOW_LOGGERS = [pytest.param(logger, marks=pytest.mark.slow) for logger in ("tensorboard", "mlflow", "none")]


@pytest.mark.parametrize("logger", [*SLOW_LOGGERS, "csv"])
def test_every_logger_keeps_the_run_config_beside_its_checkpoints_resumes_and_evaluates(
    logger, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow >= 3.7 asks for a database otherwise
    chosen = {
        "tensorboard": [],
        "csv": ["--trainer.logger=lightning.pytorch.loggers.CSVLogger"],
        "mlflow": [
            "--trainer.logger=lightning.pytorch.loggers.MLFlowLogger",
            f"--trainer.logger.tracking_uri=file:{tmp_path / 'mlruns'}",
        ],
        "none": ["--trainer.logger=false"],
    }[logger]
    if logger == "mlflow":
        needs_extra("mlflow")
    args = ["--config", str(write_recipe(tmp_path)), *cpu(tmp_path / "logs", 1)[:-1], *chosen]
    for _ in range(2):  # a second run must not collide with the first's config
        cli = main(["fit", *args])
    summary = capsys.readouterr().out
    folder = Path(cli.trainer.checkpoint_callback.dirpath).parent
    assert (folder / "config.yaml").is_file() and (folder / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "config.yaml").exists() and not (tmp_path / "logs" / "config.yaml").exists()
    assert ("TensorBoard:" in summary) == (logger == "tensorboard")
    assert ("metrics.csv" in summary) == (logger == "csv") and ("mlflow ui" in summary) == (logger == "mlflow")
    resumed = main(["fit", *args, "--trainer.max_epochs=2", f"--ckpt_path={folder / 'checkpoints' / 'last.ckpt'}"])
    assert resumed.trainer.current_epoch == 2
    tested = main(["test", f"--ckpt_path={folder / 'checkpoints' / 'last.ckpt'}"])
    assert metrics.TEST_ACC in tested.trainer.callback_metrics


# --- machines and packaging --------------------------------------------------------------------------


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path):
    """The documented multi-GPU command, with gloo on CPU: two ranks, each half of every batch."""
    args = [a for a in cpu(tmp_path / "logs", epochs=2) if "devices" not in a]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "project.cli",
            "fit",
            "--config",
            str(write_recipe(tmp_path)),
            *args,
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(runs(tmp_path / "logs")[-1] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # 27 training images: 14 per rank (the sampler pads), in full batches of 3 (global 6 over 2 ranks)
    assert ckpt["global_step"] == 2 * (14 // 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_auto_accelerator_without_gpu_trains_in_full_precision(tmp_path):
    """bf16 autocast is what the configs ask of a GPU; on a CPU it is many times slower."""
    base = [
        "--config",
        str(write_recipe(tmp_path)),
        *[a for a in cpu(tmp_path, 0) if not a.startswith(("--trainer.accelerator", "--trainer.precision"))],
    ]
    assert main(["fit", *base, "--trainer.precision=bf16-mixed"]).trainer.precision == "32-true"
    forced = main(["fit", *base, "--trainer.precision=bf16-mixed", "--trainer.accelerator=cpu"])
    assert forced.trainer.precision == "bf16-mixed", "an explicit CPU keeps the precision asked for"


def test_the_wheel_lists_every_package():
    """pyproject.toml names the packages (so configs/ can ship as project.configs): a new one must be added. The
    examples' tests and benchmarks stay in the checkout."""
    from setuptools import find_packages

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set(find_packages(str(REPO), include=["project*"], exclude=["*.tests", "*.tests.*", "*.benchmarks"]))
    assert found <= listed, "add the new package to pyproject.toml"


@pytest.mark.slow
@needs_recipe("cifar10")  # the default recipe it prints
@needs_recipe("fsdd")
def test_a_non_editable_install_runs_from_an_empty_folder(tmp_path):
    """`pip install .` (a wheel, not editable): the recipes ship inside it, named from any folder, and the
    console command runs. The temporary venv sees this interpreter's packages (torch, lightning...)."""
    wheels, venv, empty = tmp_path / "wheels", tmp_path / "venv", tmp_path / "empty"
    pip = [sys.executable, "-m", "pip"]
    # Built from a copy: setuptools leaves build/ and *.egg-info in the folder it builds from
    sources = copy_source_tree(tmp_path / "sources")
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(sources)],
        check=True,
        cwd=tmp_path,
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages")) if os.name != "nt" else venv / "Lib" / "site-packages"
    (site / "parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # Without PYTHONPATH: a checkout on it (with its egg-info) would look installed already, and pip would skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", *wheels.glob("*.whl")], check=True, env=env
    )
    empty.mkdir()

    def run(*command: str) -> str:
        result = subprocess.run(command, cwd=empty, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    package = main.__module__.split(".")[0]  # the package's name, whatever a fork renamed it to
    where = run(str(python), "-c", f"import {package}; print({package}.__file__)")
    assert str(site) in where, f"the installed copy must be used, not the checkout: {where}"
    assert "class_path: project.examples.cifar10.CIFAR10" in run(
        str(python), "-m", "project.cli", "fit", "--print_config"
    )
    printed = run(str(python.parent / "project"), "fit", "--config", "fsdd", "--print_config")
    assert "class_path: project.examples.fsdd.FSDD" in printed and "name: fsdd" in printed
    assert "fast_dev_run: 2" in run(str(python.parent / "project"), "fit", "--preset", "debug", "--print_config")
    assert not list(empty.iterdir()), "printing a config writes nothing"


def test_fit_test_and_predict_print_no_tips_or_deprecations(tmp_path, capsys):
    """A normal run's console holds what the run did: no library's advertising tips, no deprecation
    warnings caused by how the project uses its libraries."""
    import logging
    import warnings

    from tests.recipes import run_dir, tiny_args

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("lightning.pytorch").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            # as a console shows them: deprecations only where our own code is the caller (`python -m` runs
            # the CLI as __main__, whose deprecation warnings Python shows), every other warning
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("always", category=DeprecationWarning, module=main.__module__.split(".")[0])
            main(["fit", *tiny_args(tmp_path, epochs=1)])
            run = run_dir(tmp_path)  # tests.recipes is not a trusted package: its config is passed as asked for
            for command in ("test", "predict"):
                main([command, f"--config={run / 'config.yaml'}", f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])
    finally:
        logging.getLogger("lightning.pytorch").removeHandler(handler)
    printed = capsys.readouterr()
    said = [r.getMessage() for r in records] + printed.out.splitlines() + printed.err.splitlines()
    assert not [line for line in said if "Tip:" in line or "deprecated" in line.lower()], said
    noisy = [
        w for w in caught if issubclass(w.category, DeprecationWarning | FutureWarning) or "deprecat" in str(w.message)
    ]
    assert not noisy, [f"{w.filename}:{w.lineno}: {w.message}" for w in noisy]
