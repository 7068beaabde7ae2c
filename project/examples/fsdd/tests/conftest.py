"""FSDD's test helpers: the overrides that shrink its recipe to seconds on a CPU."""

from pathlib import Path

from project.engine.recipes import shipped
from tests.conftest import cpu_trainer_args

RECIPES = shipped()


def tiny_fsdd_args(root: Path, log_dir: Path, epochs: int) -> list[str]:
    """The fsdd recipe shrunk to seconds on a CPU: a small net and batch, no augmentation (a few dozen steps are
    too few to learn through it; the augmentations have tests of their own)."""
    return [
        "--config", str(RECIPES["fsdd"]),
        f"--data.source.init_args.root={root}",
        "--data.source.init_args.download=false",
        "--data.source.init_args.expected_recordings=0",  # a handful of generated recordings
        "--data.source.init_args.val_fraction=0.2",
        "--data.batch_size=16",
        "--data.speed=0", "--data.max_shift=0", "--data.gain_db=0",
        "--model.net.init_args.hidden_size=32",
        "--model.net.init_args.n_mels=24",
        "--model.net.init_args.dropout=0",
        "--model.net.init_args.freq_masks=0",
        "--model.net.init_args.time_masks=0",
        "--model.optimizer.init_args.lr=0.02",
        "--model.scheduler.init_args.max_lr=0.02",
        *cpu_trainer_args(log_dir, epochs),
    ]  # fmt: skip
