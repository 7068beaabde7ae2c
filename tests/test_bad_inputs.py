"""The bad-input catalogue, hostile and careless input (issue 24's pass): names in an implicit config that
resolve outside the trusted packages, YAML bombs and duplicate keys in every config read, abbreviated and
mistyped options, trainer settings Lightning fails on mid-run, feature files that a cast would change
silently, checkpoints of the wrong kind, folders that cannot be written.

Each case is one test (tests/catalogue.py); every one must end in one clear line and exit status 2 (through
`cli`, as the shell runs it) or in its error naming the file, key or value. Each is built from the smallest
input that shows it; those through the command line use the tiny recipe (tests/recipes.py).
"""

import errno
import itertools
import os
import re
import signal
import unittest.mock
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from project.engine.cli import main
from project.engine.config_yaml import MAX_CONFIG_BYTES
from project.engine.data import FeatureFiles
from project.engine.errors import ConfigError, DataError, run_command
from tests.catalogue import BadInput, Refused, cases, check, cli
from tests.extras import needs_extra
from tests.recipes import TINY, tiny_args

LIGHTNING_VERSION = "2.6.6"


def load_space(path):
    """The sweep's search-space reader; its cases skip, naming the extra, where Optuna is not installed."""
    needs_extra("optuna")
    from project.engine.sweep.space import load_space as load

    return load(path)


def bomb(levels: int = 9) -> str:
    """A YAML "billion laughs": `levels` lists of 9 aliases to the list before; 9**levels values, about 1 KB."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * 9)}]"]
    lines += [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in itertools.pairwise(names)]
    return "\n".join(lines) + "\n"


def _indented(text: str, spaces: int = 2) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


def _fit(t: Path, *extra: str) -> None:
    """1 epoch of the tiny recipe, logs under the case's folder."""
    cli("fit", *tiny_args(t / "logs", epochs=1), *extra)


def _test_tiny(t: Path, *extra: str) -> None:
    """`test` with the tiny recipe, logs under the case's folder."""
    cli("test", f"--config={TINY}", f"--trainer.logger.init_args.save_dir={t / 'logs'}", *extra)


def _file(t: Path, name: str, content: object) -> Path:
    """`content` as the file `name` in the case's folder: text or bytes as they are, else through torch.save."""
    if isinstance(content, bytes | str):
        (t / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    else:
        torch.save(content, t / name)
    return t / name


def _option(t: Path, option: str, name: str, content: object) -> str:
    """`option=FILE`, FILE being `name` in the case's folder, holding `content` (`_file`)."""
    return f"{option}={_file(t, name, content)}"


def _config(t: Path, text: str, name: str = "bad.yaml", *extra: str) -> None:
    _fit(t, _option(t, "--config", name, text), *extra)


def _checkpoint(path: Path, **content: object) -> Path:
    """The least a file needs to be taken for a Lightning checkpoint, plus `content`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "pytorch-lightning_version": LIGHTNING_VERSION, **content}, path)
    return path


def _run_folder(t: Path, config: object = None, **content: object) -> Path:
    """A downloaded run folder: `config.yaml` (a dict, or text as is) beside `checkpoints/last.ckpt`."""
    folder = t / "rf"
    ckpt = _checkpoint(folder / "checkpoints" / "last.ckpt", **content)
    if config is not None:
        (folder / "config.yaml").write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return ckpt


def _test_run_folder(t: Path, config: object = None, **content: object) -> None:
    """`test --ckpt_path rf/checkpoints/last.ckpt`: the run is rebuilt from what lies beside the checkpoint."""
    cli("test", f"--ckpt_path={_run_folder(t, config, **content)}")


def _hook(hook: str, target: str) -> dict:
    """A run config whose callback calls `target` at `hook`: the issue's bypass was `torch.os.system`."""
    callback = {"class_path": "lightning.pytorch.callbacks.LambdaCallback", "init_args": {hook: target}}
    return {"trainer": {"callbacks": [callback]}}


def _refusing(key: str, name: str) -> str:
    return rf"Refusing {re.escape(key)}: {re.escape(name)}\b.*rf/config\.yaml.*picked up without being asked.*--config"


# ------------------------------------------------------------------------------------------- trust

HOOKS = [  # (hook, what it names): each a trusted package's re-export of something that runs commands
    ("on_test_start", "torch.os.system"),
    ("on_fit_start", "lightning.pytorch.cli.os.system"),
    ("on_test_end", "torchvision.datasets.utils.os.system"),
    ("on_test_start", "torch.sys.exit"),
    ("on_test_start", "torch.serialization.pickle.loads"),
    ("on_test_start", "torch.hub.load"),
    ("on_test_start", "torch.load"),
    ("on_test_start", "torch.utils.cpp_extension.load_inline"),
    ("on_test_start", "torch.nn.Module.__init__.__globals__"),
    ("on_test_start", "subprocess.call"),
    ("on_test_start", "shutil.rmtree"),
    ("on_test_start", "builtins.exec"),
]
TRUST = [
    BadInput(
        f"run config hook {hook}: {target}",
        lambda t, hook=hook, target=target: _test_run_folder(t, _hook(hook, target)),
        Refused,
        _refusing(f"trainer.callbacks[0].init_args.{hook}", target),
    )
    for hook, target in HOOKS
]
CLASS_PATHS = [  # (where in the run config, the class path)
    ("trainer.callbacks[0].class_path", "torch.os.system"),
    ("trainer.callbacks[0].class_path", "builtins.eval"),
    ("trainer.callbacks[0].class_path", "importlib.import_module"),
    ("trainer.callbacks[0].class_path", "lightning.pytorch.cli.os.popen"),
    ("model.optimizer.class_path", "torch.os.system"),
    ("model.net.class_path", "torch.hub.load"),
    ("data.class_path", "os.system"),
    ("trainer.logger.class_path", "torch.package.PackageImporter"),
]


def _with_class_path(where: str, class_path: str) -> dict:
    config: dict = {}
    node = config
    parts = where.removesuffix(".class_path").split(".")
    for part in parts:
        name, _, index = part.partition("[")
        if index:
            node[name] = [{}]
            node = node[name][0]
        else:
            node = node.setdefault(name, {})
    node["class_path"] = class_path
    return config


TRUST += [
    BadInput(
        f"run config {where}: {class_path}",
        lambda t, where=where, class_path=class_path: _test_run_folder(t, _with_class_path(where, class_path)),
        Refused,
        _refusing(where, class_path),
    )
    for where, class_path in CLASS_PATHS
]
TRUST += [
    BadInput(
        "checkpoint hyperparameters naming torch.os.system as the net",
        lambda t: _test_run_folder(
            t,
            hyper_parameters={"net": {"class_path": "torch.os.system"}},
            datamodule_hyper_parameters={"_class_path": "project.engine.data.InMemoryDataModule"},
        ),
        Refused,
        r"Refusing model\.net\.class_path: torch\.os\.system from the hyperparameters stored in .*last\.ckpt.*"
        r"it is os's",
    ),
    BadInput(
        "checkpoint hyperparameters naming subprocess.Popen as the data module",
        lambda t: _test_run_folder(
            t,
            hyper_parameters={"_class_path": "project.tasks.classification.Classifier"},
            datamodule_hyper_parameters={"_class_path": "subprocess.Popen", "args": "touch ran"},
        ),
        Refused,
        r"Refusing data\.class_path: subprocess\.Popen from the hyperparameters stored in .*last\.ckpt",
    ),
]

# Issue 33's attack pass: names inside the trusted packages that run code, each as a LambdaCallback hook built from
# a class_path (the way `elastic_launch` ran `touch`), refused from a run folder's config.yaml and from the config
# a checkpoint copied away from its folder carries (tests/test_trust.py tries each in 9 places)
ATTACK_NAMES = [
    "torch.distributed.launcher.api.elastic_launch",
    "torch.utils.collect_env.run",
    "torch.multiprocessing.spawn",
    "torch.distributed.TCPStore",
    "torch._inductor.codecache.PyCodeCache.load",
    "lightning.fabric.utilities.cloud_io._load",
    "torch.testing._internal.common_utils.shell",
    "lightning.pytorch.cli.LightningCLI",
    "torch.distributed.run.main",
    "torch.compile",
    "torch.save",
    "torchvision.datasets.utils.download_url",
]


def _launching_hook(target: str) -> dict:
    """The issue's setup: a LambdaCallback whose hook is built from `target` with `entrypoint: touch`."""
    launch = {
        "class_path": target,
        "init_args": {"config": {"min_nodes": 1, "max_nodes": 1, "nproc_per_node": 1}, "entrypoint": "touch"},
    }
    callback = {"class_path": "lightning.pytorch.callbacks.LambdaCallback", "init_args": {"on_test_start": launch}}
    return {"trainer": {"callbacks": [callback]}}


def _copied_away(t: Path, run_config: dict) -> None:
    """A checkpoint away from any run folder, carrying `run_config` as its stored run config: `test` on it."""
    ckpt = _checkpoint(t / "copied.ckpt", run_config=yaml.safe_dump(run_config))
    cli("test", f"--ckpt_path={ckpt}")


HOOK_KEY = "trainer.callbacks[0].init_args.on_test_start.class_path"
NAME_TAG = "seed_everything: !!python/name:os.system\n"
TRUST += [
    BadInput(
        f"run folder config.yaml: {name} as a LambdaCallback hook",
        lambda t, name=name: _test_run_folder(t, _launching_hook(name)),
        Refused,
        _refusing(HOOK_KEY, name),
    )
    for name in ATTACK_NAMES
]
TRUST += [
    BadInput(
        f"checkpoint copied away: {name} as a LambdaCallback hook in its stored run config",
        lambda t, name=name: _copied_away(t, _launching_hook(name)),
        Refused,
        rf"Refusing {re.escape(HOOK_KEY)}: {re.escape(name)} from the run config stored in .*copied\.ckpt.*--config",
    )
    for name in ATTACK_NAMES[:3]
]
TRUST += [
    BadInput(
        f"run folder config.yaml: {name} as {where}",
        lambda t, name=name, where=where: _test_run_folder(t, _with_class_path(where, name)),
        Refused,
        _refusing(where, name),
    )
    for where, name in [
        ("trainer.callbacks[0].class_path", "lightning.pytorch.cli.LightningCLI"),
        ("trainer.callbacks[0].class_path", "torch.optim.SGD"),  # trusted, but not a callback
        ("model.net.class_path", "torch.multiprocessing.spawn"),
        ("model.net.class_path", "lightning.pytorch.loggers.CSVLogger"),
        ("trainer.logger.class_path", "torch.distributed.TCPStore"),
        ("trainer.plugins[0].class_path", "torch.utils.collect_env.run"),
        ("trainer.strategy.class_path", "torch.distributed.launcher.api.elastic_launch"),
        ("trainer.profiler.class_path", "torch.utils.benchmark.Timer"),
        ("data.init_args.source.class_path", "project.engine.data.download.download_archive"),
    ]
]
TRUST += [
    BadInput(
        "Python YAML tag in a run folder's config.yaml",
        lambda t: _test_run_folder(t, "trainer:\n  callbacks: !!python/object/apply:os.system ['touch ran']\n"),
        Refused,
        r"rf/config\.yaml, line 2: the YAML tag !!python/object/apply:os\.system asks for a Python object"
        r".*nothing was run",
    ),
    BadInput(
        "Python YAML tag in a checkpoint's stored run config",
        lambda t: cli("test", f"--ckpt_path={_checkpoint(t / 'copied.ckpt', run_config=NAME_TAG)}"),
        Refused,
        r"the run config stored in .*copied\.ckpt, line 1: the YAML tag !!python/name:os\.system",
    ),
    BadInput(
        "a picked-up logger that sends the run elsewhere",
        lambda t: _test_run_folder(t, {"trainer": {"logger": {"class_path": "lightning.pytorch.loggers.WandbLogger"}}}),
        Refused,
        r"trainer\.logger: lightning\.pytorch\.loggers\.WandbLogger in a run config picked up without being asked "
        r"for: only a TensorBoard, CSV or local MLflow logger",
    ),
]

# -------------------------------------------------------------------------------------------- YAML

YAML_FILES = [
    BadInput(
        "YAML bomb given with --config",
        lambda t: _config(t, "trainer:\n  max_epochs: 1\nmodel:\n" + _indented(bomb())),
        Refused,
        r"bad\.yaml: its aliases \(\*name\) expand to more than 100,000 values, refused as a YAML bomb",
    ),
    BadInput(
        "YAML bomb under an unused key",
        lambda t: _config(t, "unused:\n" + _indented(bomb())),
        Refused,
        r"bad\.yaml: its aliases .* YAML bomb",
    ),
    BadInput(
        "YAML bomb in a run folder's config.yaml",
        lambda t: _test_run_folder(t, "trainer:\n  max_epochs: 1\nlaughs:\n" + _indented(bomb())),
        Refused,
        r"rf/config\.yaml: its aliases .* YAML bomb",
    ),
    BadInput(
        "YAML bomb given as --config text",
        lambda t: _fit(t, "--config", "unused:\n" + _indented(bomb())),
        Refused,
        r"its aliases .* YAML bomb",
    ),
    BadInput(
        "YAML bomb as a preset file",
        lambda t: _fit(t, _option(t, "--preset", "laughs.yaml", bomb())),
        Refused,
        r"laughs\.yaml: its aliases .* YAML bomb",
    ),
    BadInput(
        "YAML bomb as a command-line value",
        lambda t: _fit(t, "--model.optimizer.init_args={" + bomb().replace("\n", ", ").rstrip(", ") + "}"),
        Refused,
        r"model\.optimizer.*its aliases .* YAML bomb",
    ),
    BadInput(
        "YAML bomb in a search space",
        lambda t: load_space(_file(t, "space.yaml", bomb())),
        ConfigError,
        r"space\.yaml: its aliases .* YAML bomb",
    ),
    BadInput(
        "duplicate top-level key",
        lambda t: _config(t, "trainer:\n  max_epochs: 1\nmodel: {}\ntrainer:\n  max_epochs: 2\n"),
        Refused,
        r"bad\.yaml, line 4: the key `trainer` appears twice in one mapping \(lines 1 and 4\)",
    ),
    BadInput(
        "duplicate nested key",
        lambda t: _config(t, "trainer:\n  max_epochs: 1\n  max_epochs: 2\n"),
        Refused,
        r"bad\.yaml, line 3: the key `max_epochs` appears twice in one mapping \(lines 2 and 3\).*remove one",
    ),
    BadInput(
        "duplicate key in a flow mapping",
        lambda t: _config(t, "model:\n  optimizer: {class_path: torch.optim.SGD, class_path: torch.optim.Adam}\n"),
        Refused,
        r"bad\.yaml, line 2: the key `class_path` appears twice",
    ),
    BadInput(
        "duplicate key in a run folder's config.yaml",
        lambda t: _test_run_folder(t, "trainer:\n  max_epochs: 1\ntrainer:\n  max_epochs: 2\n"),
        Refused,
        r"rf/config\.yaml, line 3: the key `trainer` appears twice",
    ),
    BadInput(
        "duplicate key in a preset",
        lambda t: _fit(t, _option(t, "--preset", "p.yaml", "trainer:\n  fast_dev_run: 1\n  fast_dev_run: 2\n")),
        Refused,
        r"p\.yaml, line 3: the key `fast_dev_run` appears twice",
    ),
    BadInput(
        "duplicate key in --config text",
        lambda t: _fit(t, "--config", "trainer:\n  max_epochs: 1\n  max_epochs: 2\n"),
        Refused,
        r"the key `max_epochs` appears twice",
    ),
    BadInput(
        "duplicate key in a command-line value",
        lambda t: _fit(t, "--model.optimizer.init_args={lr: 0.1, lr: 0.2}"),
        Refused,
        r"model\.optimizer.*the key `lr` appears twice",
    ),
    BadInput(
        "duplicate key in a search space",
        lambda t: load_space(
            _file(t, "space.yaml", "model.optimizer.init_args.lr: {type: float, low: 0.1, high: 1}\n" * 2)
        ),
        ConfigError,
        r"space\.yaml, line 2: the key `model\.optimizer\.init_args\.lr` appears twice",
    ),
    BadInput(
        "alias inside itself",
        lambda t: _config(t, "trainer: &loop\n  callbacks: [*loop]\n"),
        Refused,
        r"bad\.yaml, line \d: an alias refers to a value that contains it",
    ),
    BadInput(
        "nested 200 levels deep",
        lambda t: _config(t, "trainer: " + "[" * 200 + "]" * 200 + "\n"),
        Refused,
        r"bad\.yaml, line 1: nested more than 100 levels deep",
    ),
    BadInput(
        "config file of 2 MB",
        lambda t: _config(t, "# padding\n" * (2 * MAX_CONFIG_BYTES // 10) + "trainer: {}\n"),
        Refused,
        r"bad\.yaml is 2,097,\d+ bytes long, past the 1,048,576 a config may have",
    ),
    BadInput(
        "run folder config.yaml of 2 MB",
        lambda t: _test_run_folder(t, "# padding\n" * (2 * MAX_CONFIG_BYTES // 10)),
        Refused,
        r"rf/config\.yaml is 2,097,\d+ bytes long",
    ),
    BadInput(
        "binary file given as --config",
        lambda t: _fit(t, _option(t, "--config", "model.bin", b"\xff\xfe\x00\x81" * 64)),
        Refused,
        r"cannot read the config file .*model\.bin",
    ),
    BadInput(
        "YAML tag that would call os.system",
        lambda t: _config(t, "trainer: !!python/object/apply:os.system ['touch ran']\n"),
        Refused,
        r"bad\.yaml, line 1, column \d+ is not valid YAML: could not determine a constructor .*python/object/apply",
    ),
    BadInput(
        "YAML scalar at the top level",
        lambda t: _config(t, "max_epochs 3\n"),
        Refused,
        r"bad\.yaml holds a str at the top level",
    ),
    BadInput(
        "run folder config.yaml holding a list",
        lambda t: _test_run_folder(t, "- trainer\n- model\n"),
        Refused,
        r"rf/config\.yaml holds a list, not a run's config: pass --config RECIPE",
    ),
    BadInput(
        "--config naming a folder",
        lambda t: _fit(t, f"--config={t}"),
        Refused,
        r"config.*is not a file",
    ),
    BadInput(
        "--config naming a mistyped recipe",
        lambda t: cli("fit", "--config=cifar11"),
        Refused,
        r"--config cifar11: no such file, and no shipped recipe of that name \(shipped: .*\)",
    ),
]

# ------------------------------------------------------------------------------- command-line options

OPTIONS = [  # (name, extra arguments to a tiny fit, what the one line must say)
    (
        "abbreviated --trainer.max_epoch 3",
        ["--trainer.max_epoch", "3"],
        r"unrecognized arguments: --trainer\.max_epoch 3 \(did you mean --trainer\.max_epochs\?\)",
    ),
    (
        "abbreviated --trainer.max_epoch=3",
        ["--trainer.max_epoch=3"],
        r"unrecognized arguments: --trainer\.max_epoch=3 \(did you mean --trainer\.max_epochs\?\)",
    ),
    ("abbreviated --trainer.acc gpu", ["--trainer.acc", "gpu"], r"unrecognized arguments: --trainer\.acc gpu"),
    (
        "abbreviated --data.batch_siz 4",
        ["--data.batch_siz", "4"],
        r"data\.batch_siz=4: project\.engine\.data\.InMemoryDataModule has no argument batch_siz",
    ),
    ("abbreviated --seed 1", ["--seed", "1"], r"unrecognized arguments: --seed 1"),
    ("abbreviated --conf", ["--conf", str(TINY)], r"unrecognized arguments: --conf .*tiny\.yaml"),
    ("unknown top-level key", ["--foo=1"], r"unrecognized arguments: --foo=1"),
    ("unknown model key", ["--model.nonexistent=1"], r"model\.nonexistent=1: .*Classifier has no argument nonexistent"),
    (
        "data.batch_size abc",
        ["--data.batch_size", "abc"],
        r"^data\.batch_size=abc is not accepted: expected an integer",
    ),
    (
        "optimizer lr=fast",
        ["--model.optimizer.init_args.lr=fast"],
        r"^model\.optimizer\.lr=fast is not accepted: expected a number",
    ),
    (
        "scheduler max_lr=x",
        ["--model.scheduler.init_args.max_lr=x"],
        r"^model\.scheduler\.max_lr=x is not accepted: expected a number or a list",
    ),
    (
        "trainer.max_epochs many",
        ["--trainer.max_epochs=many"],
        r"^trainer\.max_epochs=many is not accepted: expected an integer or null",
    ),
    (
        "trainer.precision banana",
        ["--trainer.precision=banana"],
        r"^trainer\.precision=banana is not accepted: expected .*bf16-mixed",
    ),
    (
        "seed_everything x",
        ["--seed_everything=x"],
        r"^seed_everything=x is not accepted: expected true or false or an integer",
    ),
    (
        "gradient_clip_val x",
        ["--trainer.gradient_clip_val=x"],
        r"^trainer\.gradient_clip_val=x is not accepted: expected an integer or a number or null",
    ),
    ("data.val_size x", ["--data.val_size=x"], r"^data\.val_size=x is not accepted: expected an integer or a number"),
    (
        "data.on_device maybe",
        ["--data.on_device=maybe"],
        r"^data\.on_device=maybe is not accepted: expected true or false",
    ),
    (
        "logger save_dir a list",
        ["--trainer.logger.init_args.save_dir=[1]"],
        r"^trainer\.logger\.save_dir=\[1\] is not accepted",
    ),
    (
        "model.label_smoothing x",
        ["--model.label_smoothing=x"],
        r"^model\.label_smoothing=x is not accepted: expected a number",
    ),
    (
        "callback that is not one",
        ["--trainer.callbacks+=torch.os.system"],
        r"trainer\.callbacks=torch\.os\.system: Import path does not correspond to a subclass of Callback",
    ),
    (
        "callback from no module",
        ["--trainer.callbacks+=nope.Nope"],
        r"trainer\.callbacks=nope\.Nope: No module named 'nope'",
    ),
    (
        "net class that does not exist",
        ["--model.net=torch.nn.Nope"],
        r"model\.net=torch\.nn\.Nope: module 'torch\.nn' has no attribute 'Nope'",
    ),
    (
        "optimizer that does not exist",
        ["--model.optimizer=torch.optim.Nope"],
        r"model\.optimizer=torch\.optim\.Nope: .*has no attribute 'Nope'",
    ),
    (
        "data argument misspelt",
        ["--data.init_args.batchsize=4"],
        r"data\.batchsize=4: project\.engine\.data\.InMemoryDataModule has no argument batchsize",
    ),
    (
        "accelerator gpu without a GPU",
        ["--trainer.accelerator=gpu"],
        r"trainer\.accelerator=gpu, but this machine has no usable GPU.*--trainer\.accelerator auto",
    ),
    (
        "max_epochs=-5",
        ["--trainer.max_epochs=-5"],
        r"the trainer refused its config: `max_epochs` must be a non-negative integer or -1\. You passed in -5",
    ),
    ("max_steps=-5", ["--trainer.max_steps=-5"], r"`max_steps` must be a non-negative integer or -1"),
    (
        "num_workers=-1",
        ["--data.num_workers=-1"],
        r"data\.num_workers must be 0 \(load in the main process\) or more, got -1",
    ),
    ("batch_size=0", ["--data.batch_size=0"], r"data\.batch_size must be at least 1, got 0"),
    (
        "val_size=0",
        ["--data.val_size=0"],
        r"data\.val_size must be at least 1 \(a count\) or between 0 and 1 \(a share\), got 0",
    ),
    ("val_size=1.5", ["--data.val_size=1.5"], r"data\.val_size must be .* got 1\.5"),
    ("devices=0", ["--trainer.devices=0"], r"the trainer refused its config: `Trainer\(devices='0'\)`"),
    ("num_nodes=0", ["--trainer.num_nodes=0"], r"trainer\.num_nodes=0: it must be at least 1"),
    (
        "accumulate_grad_batches=0",
        ["--trainer.accumulate_grad_batches=0"],
        r"trainer\.accumulate_grad_batches=0: it must be at least 1",
    ),
    (
        "check_val_every_n_epoch=0",
        ["--trainer.check_val_every_n_epoch=0"],
        r"trainer\.check_val_every_n_epoch=0: it must be at least 1",
    ),
    (
        "min_epochs above max_epochs",
        ["--trainer.min_epochs=5", "--trainer.max_epochs=2"],
        r"trainer\.min_epochs=5 is more than trainer\.max_epochs=2",
    ),
    (
        "min_steps above max_steps",
        ["--trainer.min_steps=50", "--trainer.max_steps=5"],
        r"trainer\.min_steps=50 is more than trainer\.max_steps=5",
    ),
    ("limit_train_batches=-1", ["--trainer.limit_train_batches=-1"], r"invalid value -1 for limit_train_batches"),
    ("val_check_interval=-1", ["--trainer.val_check_interval=-1"], r"invalid value -1 for val_check_interval"),
    ("max_time forever", ["--trainer.max_time=forever"], r"`Timer\(duration='forever'\)` is not a valid duration"),
    (
        "strategy nope",
        ["--trainer.strategy=nope"],
        r"the trainer refused its config: You selected an invalid strategy name: `strategy='nope'`",
    ),
    (
        "optimizer momentum=-1",
        ["--model.optimizer.init_args.momentum=-1"],
        r"model\.optimizer refused its arguments: Invalid momentum value: -1\.0",
    ),
    (
        "optimizer lr=-1",
        ["--model.optimizer.init_args.lr=-1"],
        r"model\.optimizer refused its arguments: Invalid learning rate: -1",
    ),
    ("label_smoothing=-0.1", ["--model.label_smoothing=-0.1"], r"model\.label_smoothing=-0\.1 is outside \[0, 1\)"),
    ("fold without num_folds", ["--data.fold=3"], r"data\.fold=3 needs data\.num_folds"),
    ("num_folds=1", ["--data.num_folds=1", "--data.fold=0"], r"data\.num_folds must be at least 2, got 1"),
    (
        "fold beyond num_folds",
        ["--data.fold=5", "--data.num_folds=3"],
        r"data\.fold must be between 0 and 2 \(data\.num_folds=3\), got 5",
    ),
    ("model given a class path", ["--model=nope.Nope"], r"^model=nope\.Nope: No module named 'nope'\n"),
    ("preset that does not exist", ["--preset", "nosuch"], r"--preset nosuch: no such preset\. Available: .*debug"),
    ("preset without a name", ["--preset"], r"--preset needs a name, e\.g\. --preset debug"),
    (
        "--ckpt_path last without a run",
        ["--ckpt_path=last"],
        r"--ckpt_path last: no run named tiny under .*logs has a last\.ckpt to resume",
    ),
]
CLI_OPTIONS = [BadInput(name, lambda t, extra=extra: _fit(t, *extra), Refused, match) for name, extra, match in OPTIONS]
CLI_OPTIONS += [
    BadInput(
        "subcommand that does not exist",
        lambda t: cli("train", f"--config={TINY}"),
        Refused,
        r"invalid choice: 'train' \(choose from 'fit', 'validate', 'test', 'predict'\)",
    ),
    BadInput(
        "no subcommand", lambda t: cli(), Refused, r"expected \"subcommand\" to be one of \{fit,validate,test,predict\}"
    ),
]

# ------------------------------------------------------------------------------------ feature files


def _table(rows: int = 12, features: int = 8) -> dict:
    """A valid feature file's content: 3 classes, every one present."""
    return {"features": torch.randn(rows, features), "labels": torch.arange(rows) % 3}


def _spoilt(**changes: object) -> dict:
    content = _table()
    content.update(changes)
    return {k: v for k, v in content.items() if v is not None}


def _nan_features() -> torch.Tensor:
    features = torch.randn(12, 8)
    features[5, 2] = float("nan")
    return features


def _read_split(t: Path, test: object, train: object | None = None) -> None:
    """FeatureFiles over a good training file (or `train`) and the test file `test`; reads the test split."""
    source = FeatureFiles(_file(t, "train.pt", _table() if train is None else train), test=_file(t, "test.pt", test))
    source.load("test")


FEATURES = [  # (name, the spoilt file's content, what the line must say)
    (
        "NaN feature",
        _spoilt(features=_nan_features()),
        r"test\.pt holds 1 NaN or infinite feature values \(first in row 5\): fill or drop",
    ),
    (
        "infinite features",
        _spoilt(features=torch.full((12, 8), float("inf"))),
        r"test\.pt holds 96 NaN or infinite feature values \(first in row 0\)",
    ),
    (
        "float labels",
        _spoilt(labels=torch.arange(12) % 3 + 0.5),
        r"test\.pt holds labels that are not whole numbers \(row 0: 0\.5\).*integer tensor",
    ),
    (
        "NaN label",
        _spoilt(labels=torch.tensor([0.0] * 11 + [float("nan")])),
        r"test\.pt holds labels that are not whole numbers \(row 11: nan\)",
    ),
    ("negative labels", _spoilt(labels=torch.arange(12) % 3 - 1), r"test\.pt holds negative labels \(-1\)"),
    (
        "labels beyond the training classes",
        _spoilt(labels=torch.arange(12) % 5),
        r"test\.pt has labels up to 4, beyond the 3 classes \(0, 1, 2\).*data\.source\.init_args\.classes",
    ),
    (
        "bool labels",
        _spoilt(labels=torch.arange(12) % 2 == 0),
        r"test\.pt: 'labels' must be class indices 0, 1, \.\.\., got torch\.bool",
    ),
    (
        "complex features",
        _spoilt(features=torch.randn(12, 8, dtype=torch.complex64)),
        r"test\.pt: 'features' must be real numbers, got torch\.complex64",
    ),
    (
        "no labels",
        _spoilt(labels=None),
        r"test\.pt lacks 'labels' \(it holds a dict of 'features'\): write it with torch\.save",
    ),
    ("no features", _spoilt(features=None), r"test\.pt lacks 'features' \(it holds a dict of 'labels'\)"),
    (
        "a list, not a dict",
        [torch.randn(12, 8), torch.arange(12) % 3],
        r"test\.pt lacks 'features' and 'labels' \(it holds a list\)",
    ),
    (
        "features as a Python list",
        _spoilt(features=[[0.0] * 8] * 12),
        r"test\.pt: 'features' and 'labels' must be tensors, got list and Tensor",
    ),
    (
        "numpy arrays",
        {"features": torch.randn(12, 8).numpy(), "labels": torch.arange(12) % 3},
        r"test\.pt holds Python objects besides tensors \(numpy arrays, say\), which are not loaded",
    ),
    (
        "CSV named .pt",
        "f1,f2,label\n0.1,0.2,0\n",
        r"test\.pt is not a feature file: torch\.load cannot read it \(another format, such as CSV",
    ),
    ("empty file", b"", r"test\.pt is not a feature file"),
    (
        "no samples",
        _spoilt(features=torch.zeros(0, 8), labels=torch.zeros(0, dtype=torch.long)),
        r"test\.pt must hold features \(N, F\) and labels \(N,\) with N >= 1; got features \(0, 8\)",
    ),
    ("1-D features", _spoilt(features=torch.randn(12)), r"test\.pt must hold features \(N, F\) .*got features \(12,\)"),
    ("fewer labels than rows", _spoilt(labels=torch.arange(11) % 3), r"test\.pt must hold .*labels \(11,\)"),
]
FEATURE_FILES = [
    BadInput(f"feature file: {name}", lambda t, content=content: _read_split(t, content), DataError, match)
    for name, content, match in FEATURES
]


def _truncated_feature_file(t: Path) -> None:
    path = _file(t, "train.pt", _table(rows=500))
    path.write_bytes(path.read_bytes()[:2000])
    FeatureFiles(path)


FEATURE_FILES += [
    BadInput("feature file: truncated", _truncated_feature_file, DataError, r"train\.pt is not a feature file"),
    BadInput(
        "feature file: missing",
        lambda t: FeatureFiles(t / "nope.pt"),
        FileNotFoundError,
        r"nope\.pt does not exist; point data\.source\.init_args at your feature files",
    ),
    BadInput(
        "feature file: labels beyond the classes named",
        lambda t: FeatureFiles(_file(t, "train.pt", _table()), classes=["a", "b"]).load("train"),
        DataError,
        r"train\.pt has labels up to 2, beyond the 2 classes \(a, b\)",
    ),
    BadInput(
        "feature file with NaN in its test split, through the command line",
        lambda t: cli(
            "test",
            f"--config={TINY}",
            "--data.source=project.engine.data.FeatureFiles",
            _option(t, "--data.source.init_args.train", "train.pt", _table()),
            _option(t, "--data.source.init_args.test", "test.pt", _spoilt(features=_nan_features())),
            "--trainer.accelerator=cpu",
            f"--trainer.logger.init_args.save_dir={t / 'logs'}",
        ),
        Refused,
        r"test\.pt holds 1 NaN or infinite feature values",
    ),
    BadInput(
        "feature file with float labels, through the command line",
        lambda t: _fit(
            t,
            "--data.source=project.engine.data.FeatureFiles",
            _option(t, "--data.source.init_args.train", "train.pt", _spoilt(labels=torch.arange(12) % 3 * 0.9)),
        ),
        Refused,
        r"train\.pt holds labels that are not whole numbers \(row 1: 0\.9",
    ),
]

# -------------------------------------------------------------------------------------- checkpoints


def _legacy(t: Path) -> None:
    torch.save(
        {"state_dict": {}, "pytorch-lightning_version": LIGHTNING_VERSION},
        t / "old.ckpt",
        _use_new_zipfile_serialization=False,
    )
    _test_tiny(t, f"--ckpt_path={t / 'old.ckpt'}")


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


CHECKPOINTS = [
    BadInput(
        "checkpoint in torch's legacy (non-zip) format",
        _legacy,
        Refused,
        r"old\.ckpt is a checkpoint in torch's legacy \(pre-1\.6, non-zip\) format.*Convert it once: python -c",
    ),
    BadInput(
        "fit resumed from a checkpoint without optimizer state",
        lambda t: _fit(t, f"--ckpt_path={_checkpoint(t / 'weights.ckpt', epoch=0, global_step=5)}"),
        Refused,
        r"weights\.ckpt holds the weights only, no optimizer state .*`fit` cannot resume from it",
    ),
    BadInput(
        "unreachable http --ckpt_path",
        lambda t: cli(
            "test",
            f"--config={TINY}",
            "--ckpt_path=http://127.0.0.1:9/last.ckpt",
            f"--trainer.logger.init_args.save_dir={t}",
        ),
        Refused,
        r"Could not download --ckpt_path http://127\.0\.0\.1:9/last\.ckpt .*check the URL and the network",
    ),
    BadInput(
        "empty checkpoint file",
        lambda t: _test_tiny(t, _option(t, "--ckpt_path", "empty.ckpt", b"")),
        Refused,
        r"empty\.ckpt is not a readable PyTorch checkpoint",
    ),
    BadInput(
        "text file as --ckpt_path",
        lambda t: _test_tiny(t, _option(t, "--ckpt_path", "notes.ckpt", "best run\n")),
        Refused,
        r"notes\.ckpt is not a readable PyTorch checkpoint",
    ),
    BadInput(
        "a config as --ckpt_path",
        lambda t: _test_tiny(t, f"--ckpt_path={TINY}"),
        Refused,
        r"tiny\.yaml is not a readable PyTorch checkpoint",
    ),
    BadInput(
        "checkpoint that does not say how to rebuild its run",
        lambda t: cli("test", f"--ckpt_path={_checkpoint(t / 'bare.ckpt')}"),
        Refused,
        r"bare\.ckpt does not say how to rebuild its run: it has no hyper_parameters and no "
        r"datamodule_hyper_parameters",
    ),
    BadInput(
        "checkpoint carrying code in its hyperparameters, no --config",
        lambda t: _test_run_folder(t, hyper_parameters={"x": _Payload(t / "ran")}),
        Refused,
        r"Refusing to load .*last\.ckpt: besides tensors it holds pickled Python objects",
    ),
    BadInput(
        "file:// --ckpt_path of a missing file",
        lambda t: _test_tiny(t, f"--ckpt_path={(t / 'gone.ckpt').as_uri()}"),
        Refused,
        r"gone\.ckpt",
    ),
]

# ---------------------------------------------------------------------------------- paths and permissions


def _read_only(folder: Path):
    """Every mkdir under `folder` fails as on a read-only file system (root ignores chmod)."""
    real = __import__("os").mkdir

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(folder)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, *args, **kwargs)

    return unittest.mock.patch("os.mkdir", mkdir)


def _fit_read_only_logs(t: Path) -> None:
    with _read_only(t / "ro"):
        cli("fit", *tiny_args(t / "ro", epochs=1))


def _predict_read_only_output(t: Path) -> None:
    def refuse(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    with unittest.mock.patch("project.engine.callbacks.predictions.open", refuse, create=True):
        cli("predict", *tiny_args(t / "logs", epochs=1), f"--predictions.output={t / 'ro' / 'predictions.csv'}")


def _unreadable_config(t: Path) -> None:
    (t / "secret.yaml").write_text("trainer: {}\n")
    read_text = Path.read_text

    def denied(path: Path, *args, **kwargs) -> str:
        if path.name == "secret.yaml":
            raise OSError(errno.EACCES, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    with unittest.mock.patch.object(Path, "read_text", denied):
        _fit(t, f"--config={t / 'secret.yaml'}")


PATHS = [
    BadInput(
        "read-only logs folder",
        _fit_read_only_logs,
        Refused,
        r"cannot write .*/ro: Read-only file system\. Choose a folder you may write to .*save_dir",
    ),
    BadInput(
        "read-only predictions output",
        _predict_read_only_output,
        Refused,
        r"cannot write .*ro/predictions\.csv: Read-only file system.*--predictions\.output",
    ),
    BadInput(
        "predictions output naming a folder",
        lambda t: cli("predict", *tiny_args(t / "logs", epochs=1), f"--predictions.output={t}"),
        Refused,
        r"Is a directory: ",
    ),
    BadInput(
        "logs folder under a file",
        lambda t: ((t / "afile").write_text("x"), cli("fit", *tiny_args(t / "afile" / "logs", epochs=1))),
        Refused,
        r"Not a directory: .*afile/logs",
    ),
    BadInput(
        "config file that cannot be read",
        _unreadable_config,
        Refused,
        r"cannot read the config file .*secret\.yaml: \[Errno 13\] Permission denied",
    ),
    BadInput(
        "feature file path naming a folder",
        lambda t: FeatureFiles(t),
        FileNotFoundError,
        r"does not exist; point data\.source\.init_args at your feature files",
    ),
]

# ----------------------------------------------------------------------- data mistakes, bounds (issue 33)


def _images(t: Path, *extra: str) -> None:
    """1 epoch of the tiny recipe on a small image tree (tests/image_tree.py) with a 16x16 ResNet, logs in the case's
    folder."""
    from tests.recipes import image_folder_args

    cli("fit", *image_folder_args(t / "images", t / "logs", widths="[4,4,4,4]", epochs=1), *extra)


def _unreadable_image(t: Path) -> Path:
    from tests.image_tree import write_image_tree

    tree = write_image_tree(t / "images", per_class=6)
    bad = sorted((tree / "circle").iterdir())[0]
    bad.write_bytes(b"not an image")
    return bad


def _streamed_past_an_unreadable_image(t: Path) -> None:
    """Streaming with skip_bad_files: the run trains, the file is logged and left out of its batches."""
    _unreadable_image(t)
    _images(t, "--data.in_memory=false", "--data.source.init_args.skip_bad_files=true")
    assert list((t / "logs").rglob("last.ckpt")), "the streamed run with an unreadable image did not train"


def _few_workers(t: Path) -> None:
    """1,000 workers asked for: the data module uses at most the CPUs this process may use, saying so."""
    from project.engine.data import InMemoryDataModule
    from tests.recipes import TinyTable

    data = InMemoryDataModule(TinyTable(), num_workers=1000)
    assert data.num_workers <= len(os.sched_getaffinity(0)), data.num_workers


def _features_fit(t: Path, *extra: str) -> None:
    """`fit --config features` in the case's folder (the recipe's data paths are relative to it)."""
    cwd = os.getcwd()
    os.chdir(t)
    try:
        cli("fit", "--config", "features", f"--trainer.logger.init_args.save_dir={t / 'logs'}", *extra)
    finally:
        os.chdir(cwd)


def _optimize(t: Path, *args: str) -> None:
    """`python -m project.optimize ARGS` as the shell runs it: a user error ends it with status 2."""
    import contextlib
    import io

    from project.engine.data.optimize import main as optimize

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            run_command(lambda: optimize(list(args)))
    except SystemExit as stopped:
        raise Refused(f"exit status {stopped.code}: {stderr.getvalue()}") from None


DATA_MISTAKES = [
    BadInput(
        "fit --config features without its feature files (under jsonargparse's Union wrapper)",
        lambda t: _features_fit(t),
        Refused,
        r"^\S*data/features/train\.pt does not exist; point data\.source\.init_args at your feature files\.\n",
    ),
    BadInput(
        "an image folder that does not exist",
        lambda t: _images(t, f"--data.source.init_args.root={t / 'nowhere'}"),
        Refused,
        r"^Image folder .*nowhere does not exist\. Point --data\.source\.init_args\.root at a folder",
    ),
    BadInput(
        "an unreadable image, streamed: the advice names the real key",
        lambda t: (_unreadable_image(t), _images(t, "--data.in_memory=false", "--data.num_workers=0")),
        Refused,
        r"circle/000\.png is not a readable image .*pass --data\.source\.init_args\.skip_bad_files true",
    ),
    BadInput("an unreadable image, streamed with skip_bad_files", _streamed_past_an_unreadable_image, None, ""),
    BadInput(
        "optimize --config=NAME finds the recipe",
        lambda t: _optimize(
            t, "--config=features", f"--output_dir={t / 'chunks'}", f"--data.source.init_args.train={t / 'none.pt'}"
        ),
        Refused,
        r"^exit status 2: error: \S*none\.pt does not exist; point data\.source\.init_args at your feature files",
    ),
]
BOUNDS = [
    BadInput("1,000 loader workers", _few_workers, None, ""),
    BadInput(
        "a net of 10**12 parameters",
        lambda t: _fit(t, "--model.net=project.models.MLP", "--model.net.init_args.hidden=[1000000,1000000]"),
        Refused,
        r"^model\.net \(project\.models\.MLP\) with hidden=\[1000000, 1000000\].* would hold "
        r"1,000,0\d\d,\d+,\d+ parameters, .* GB, more than the .* GB of memory this machine has free: lower its sizes",
    ),
    BadInput(
        "model.num_classes=1000000 on a fresh fit",
        lambda t: _fit(t, "--model.num_classes=1000000"),
        Refused,
        r"^model\.num_classes=1000000 contradicts the data \(\w+\), which has num_classes=3: .*Remove it",
    ),
]

# -------------------------------------------------------------------------------------------- signals


class Stopped(Exception):
    """A fit stopped by a signal: its exit status, and the checkpoint it left."""


class SignalAt(L.Callback):
    """Sends `signal.SIGTERM` to this process at the end of training step `step`, or in validation."""

    observes_only = True  # a stop, as a signal from outside: the resume that follows leaves it out

    def __init__(self, step: int | None):
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_validation_batch_end(self, trainer, *args) -> None:
        if self.step is None and not trainer.sanity_checking:
            os.kill(os.getpid(), signal.SIGTERM)


def _terminated(t: Path, step: int | None) -> None:
    """SIGTERM (what `kill`, a scheduler or a spot reclaim sends) mid-fit: the fit must stop with 143, as a
    process killed by it would, and leave a resumable last.ckpt; the one line it prints is issue 23's."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        run_command(lambda: main(["fit", *tiny_args(t / "logs", epochs=2)], callbacks=[SignalAt(step)]))
    except SystemExit as stopped:
        saved = sorted((t / "logs").rglob("last.ckpt"))
        steps = [torch.load(p, weights_only=True)["global_step"] for p in saved]
        raise Stopped(f"exit status {stopped.code}, saved {saved} at steps {steps}") from None
    finally:
        signal.signal(signal.SIGTERM, handler)


SIGNALS = [
    BadInput(
        "SIGTERM at training step 2",
        lambda t: _terminated(t, 2),
        Stopped,
        r"exit status 143, saved \[.*checkpoints/last\.ckpt'\)\] at steps \[2\]",
    ),
    BadInput(
        "SIGTERM during validation",
        lambda t: _terminated(t, None),
        Stopped,
        r"exit status 143, saved \[.*checkpoints/last\.ckpt'\)\] at steps \[5\]",
    ),
]

BAD_INPUTS = TRUST + YAML_FILES + CLI_OPTIONS + FEATURE_FILES + CHECKPOINTS + PATHS + DATA_MISTAKES + BOUNDS + SIGNALS


@pytest.mark.parametrize("case", cases(BAD_INPUTS))
def test_bad_input_is_refused_with_a_clear_error(case, tmp_path):
    check(case, tmp_path)
