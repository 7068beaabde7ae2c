"""The command line as a user runs it: fit, resume, test/validate/predict from a checkpoint, print_config."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from project import metrics
from project.cli import main
from tests.conftest import tiny_cifar_args


def _run_dir(log_dir: Path) -> Path:
    runs = sorted((log_dir / "cifar10").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    return runs[-1]


def _scalars(run_dir: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny fit shared by the tests that read its outputs."""
    from tests.cifar_format import write_cifar10

    root = tmp_path_factory.mktemp("fit")
    write_cifar10(root / "data", per_batch=100)
    args = tiny_cifar_args(root / "data", root / "logs", epochs=4)
    cli = main(["fit", *args, "--checkpoint.save_top_k=-1"])  # keep every epoch's checkpoint
    return root, args, cli


def test_fit_learns_and_logs_to_tensorboard(trained):
    root, _, cli = trained
    run = _run_dir(root / "logs")
    scalars = _scalars(run)
    assert {
        metrics.TRAIN_LOSS + "_step",
        metrics.VAL_LOSS,
        metrics.VAL_ACC,
        metrics.TRAIN_ACC,
    } <= scalars.keys()
    assert any(tag.startswith("lr-") for tag in scalars), f"no learning rate curve in {sorted(scalars)}"
    assert scalars[metrics.VAL_ACC][-1] > 0.5, "10 classes: chance is 0.1; the synthetic classes are easy"
    losses = scalars[metrics.TRAIN_LOSS + "_epoch"]
    assert losses[-1] < losses[0], f"training loss did not fall: {losses}"
    assert (run / "config.yaml").is_file(), "the run's exact config must be kept beside its results"
    ckpts = {p.name for p in (run / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(name.startswith("best-") for name in ckpts), ckpts
    assert cli.trainer.checkpoint_callback.monitor == metrics.VAL_ACC


def test_resume_continues_from_the_saved_step(trained, tmp_path):
    """A run stopped after epoch 2 of 4 and resumed ends where the full run ended, same step count."""
    root, args, _ = trained
    checkpoints = _run_dir(root / "logs") / "checkpoints"
    steps_per_epoch = 400 // 50
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4 * steps_per_epoch

    mid_run = checkpoints / f"best-epoch001-step{2 * steps_per_epoch}.ckpt"
    resumed = main(["fit", *args, f"--trainer.logger.init_args.save_dir={tmp_path}", f"--ckpt_path={mid_run}"])
    assert resumed.trainer.global_step == 4 * steps_per_epoch, "resume must continue, not restart, the step count"
    assert resumed.trainer.current_epoch == 4
    scalars = _scalars(_run_dir(tmp_path))
    assert len(scalars[metrics.VAL_ACC]) == 2, "only the two remaining epochs are trained and validated"


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_evaluate_a_checkpoint(trained, subcommand, tmp_path):
    root, args, _ = trained
    last = _run_dir(root / "logs") / "checkpoints" / "last.ckpt"
    args = [a for a in args if "max_epochs" not in a]
    cli = main([subcommand, *args, f"--trainer.logger.init_args.save_dir={tmp_path}", f"--ckpt_path={last}"])
    if subcommand == "predict":
        probs = torch.cat(cli.trainer.predict_loop.predictions)
        assert probs.shape == (100, 10) and torch.allclose(probs.sum(1), torch.ones(100))
    else:
        name = metrics.VAL_ACC if subcommand == "validate" else metrics.TEST_ACC
        assert cli.trainer.callback_metrics[name] > 0.5


def test_a_named_run_folder_takes_its_evaluations_and_resumes(cifar_root, tmp_path):
    """With a named logger version, later commands log into the fit's folder: they add their own config
    file beside the fit's config.yaml; only a second fresh fit into the folder is refused."""
    args = [*tiny_cifar_args(cifar_root, tmp_path, epochs=2), "--trainer.logger.init_args.version=baseline"]
    main(["fit", *args, "--checkpoint.save_top_k=-1"])
    run = tmp_path / "cifar10" / "baseline"
    fit_config = (run / "config.yaml").read_text()
    last = run / "checkpoints" / "last.ckpt"
    for _ in range(2):  # a repeated evaluation replaces its own record
        main(["test", f"--ckpt_path={last}"])  # the run's config names the same version
    assert (run / "test_config.yaml").is_file() and (run / "config.yaml").read_text() == fit_config
    first_epoch = next((run / "checkpoints").glob("best-epoch000-*.ckpt"))
    resumed = main(["fit", *args, f"--ckpt_path={first_epoch}"])
    assert resumed.trainer.current_epoch == 2 and (run / "resume_config.yaml").is_file()
    assert (run / "config.yaml").read_text() == fit_config
    with pytest.raises(RuntimeError, match=r"config\.yaml to NOT exist"):
        main(["fit", *args])


def test_optimizer_and_scheduler_are_swappable_from_the_command_line(cifar_root, tmp_path):
    cli = main(
        [
            "fit",
            *tiny_cifar_args(cifar_root, tmp_path, epochs=1),
            "--model.optimizer=torch.optim.Adam",
            "--model.optimizer.lr=0.003",
            "--model.scheduler=torch.optim.lr_scheduler.StepLR",
            "--model.scheduler.step_size=1",
        ]
    )
    optimizer = cli.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["initial_lr"] == 0.003
    assert isinstance(cli.trainer.lr_scheduler_configs[0].scheduler, torch.optim.lr_scheduler.StepLR)


def test_default_config_is_loaded_and_printed(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for expected in (
        "class_path: project.models.ResNet",
        "class_path: project.data.CIFAR10",
        "class_path: torch.optim.SGD",
        "class_path: torch.optim.lr_scheduler.OneCycleLR",
        f"monitor: {metrics.VAL_ACC}",
    ):
        assert expected in printed


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("fit", "validate", "test", "predict"))


def test_num_classes_comes_from_the_data(cifar_root, tmp_path):
    cli = main(["fit", *tiny_cifar_args(cifar_root, tmp_path), "--trainer.max_epochs=0"])
    assert cli.model.hparams.num_classes == 10 and cli.model.net.head.out_features == 10


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(cifar_root, tmp_path):
    """The documented multi-GPU command, with gloo on CPU: two ranks, each half of every batch."""
    args = [a for a in tiny_cifar_args(cifar_root, tmp_path, epochs=2) if "devices" not in a]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "project.cli", "fit", *args, "--trainer.devices=2", "--trainer.strategy=ddp"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = _run_dir(tmp_path)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # 400 training images, global batch 50 split over 2 ranks: each rank takes 200 images in 8 steps
    assert ckpt["global_step"] == 2 * 8, (
        ckpt["epoch"],
        sorted(p.name for p in (run / "checkpoints").iterdir()),
    )
    assert _scalars(run)[metrics.VAL_ACC][-1] > 0.15, "above chance (0.1) after two short epochs"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_auto_accelerator_without_gpu_trains_in_full_precision(cifar_root, tmp_path):
    """bf16 autocast is what the configs ask of a GPU; on a CPU it is many times slower."""
    dropped = ("--trainer.accelerator", "--trainer.precision")
    base = [a for a in tiny_cifar_args(cifar_root, tmp_path) if not a.startswith(dropped)]
    base += ["--trainer.precision=bf16-mixed", "--trainer.max_epochs=0"]
    auto = main(["fit", *base])
    assert auto.trainer.precision == "32-true"
    forced = main(["fit", *base, "--trainer.accelerator=cpu"])
    assert forced.trainer.precision == "bf16-mixed", "an explicit CPU keeps the precision asked for"
