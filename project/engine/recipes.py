"""Which config files a command starts from, and which configs it may pick up without being asked.

- Every command starts from `base.yaml`: trainer, logging, checkpointing and precision, no task.
- `fit` with no `--config` trains the default recipe; a `--config` replaces it, never merges over it. A
  shipped recipe is named by its name alone (`--config features`) from any folder.
- `validate`/`test`/`predict` given `--ckpt_path` and no `--config` rebuild the run from its folder's
  `config.yaml`, or else from the checkpoint (run_config.py; trusted code only, trust.py).
- `--preset NAME` (repeatable) becomes a `--config` after the recipe's, before every other key: never the
  recipe itself (`fit --preset debug` trains the default recipe). A config file in a folder named
  `presets` is a preset too; `preset_path` says where a name is looked up.

Only `--config`, `--preset` and `--ckpt_path` are looked at: these files are chosen before LightningCLI
builds its parser.
"""

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

from project import settings
from project.engine.checkpoints import check_checkpoint_path
from project.engine.config_yaml import load_config_value
from project.engine.errors import ConfigError
from project.engine.run_config import implicit_config, resume_config

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE = PACKAGE_DIR.name

EVALUATION_COMMANDS = ("validate", "test", "predict")
PRESETS = "presets"  # the folder of presets, in the shipped configs and beside a fork's recipes
HELP = ("-h", "--help")
RECIPES = "configs"  # a folder of recipes: the top-level one, and one beside the code of each example or task


def recipes_dir() -> Path:
    """The top-level configs (base.yaml, the shared presets, generic recipes): `project.configs` in an installed
    wheel, configs/ in a checkout."""
    try:
        spec = importlib.util.find_spec(f"{PACKAGE}.configs")
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return PACKAGE_DIR.parent / RECIPES


def recipe_dirs() -> list[Path]:
    """Every folder whose recipes are found by name: the top-level configs, then each `configs/` folder inside
    the package (an example's or a task's, beside its code), so that adding or deleting one needs no list."""
    inside = sorted(p for p in PACKAGE_DIR.glob(f"*/*/{RECIPES}") if p.is_dir())
    return list(dict.fromkeys(p.resolve() for p in [recipes_dir(), *inside]))


def shipped() -> dict[str, Path]:
    """Each recipe found by name (`--config NAME`), by its name; a name found twice is refused."""
    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        for path in sorted(folder.glob("*.yaml")):
            if path.stem == "base":
                continue
            if path.stem in found:
                raise ConfigError(
                    f"two recipes are named {path.stem}: {found[path.stem]} and {path}. Rename one: `--config NAME` "
                    "must find one recipe"
                )
            found[path.stem] = path
    return found


def base_config() -> Path:
    return recipes_dir() / "base.yaml"


def default_recipe() -> str | None:
    """The recipe `fit` trains without `--config`: settings.DEFAULT_RECIPE's path, None when it names none."""
    path = shipped().get(settings.DEFAULT_RECIPE) if settings.DEFAULT_RECIPE else None
    return str(path) if path else None


def recipe_path(name: str) -> str:
    """A path as given if it exists, else the shipped recipe of that name (`features` or `features.yaml`)."""
    if "\n" in name or ":" in name or Path(name).exists():  # a YAML string, or a file
        return name
    found = shipped().get(name.removesuffix(".yaml").removesuffix(".yml"))
    if found is not None:
        return str(found)
    if "/" not in name and os.sep not in name:  # a recipe's name, mistyped
        raise ConfigError(
            f"--config {name}: no such file, and no shipped recipe of that name (shipped: "
            f"{', '.join(shipped_recipes()) or 'none'}); pass a recipe's name or a YAML file's path"
        )
    return name


def presets_dir() -> Path:
    return recipes_dir() / PRESETS


def is_preset(config: str) -> bool:
    """A `--config` value that is a preset: a file in a folder named `presets`, or in a sub-folder of one
    (`presets/quick/cifar10.yaml`)."""
    if "\n" in config or Path(config).suffix not in (".yaml", ".yml"):
        return False
    folder = Path(config).resolve().parent
    return PRESETS in (folder.name, folder.parent.name)


def preset_folders(recipe: str | None) -> list[Path]:
    """Where presets are looked up: beside the recipe file (a fork's own), then the shipped ones."""
    own = Path(recipe).resolve().parent / PRESETS if recipe and _is_file(recipe) else None
    return list(dict.fromkeys(p for p in (own, presets_dir().resolve()) if p is not None))


def preset_path(name: str, recipe: str | None) -> str:
    """The config file of preset `name` over the recipe file `recipe` (None: no file): the first that exists of
    `presets/NAME/<recipe stem>.yaml` and `presets/NAME.yaml` beside the recipe, then the shipped
    `presets/NAME.yaml` (only that without a recipe file). A path to a .yaml file is used as it is."""
    if name.endswith((".yaml", ".yml")) and _is_file(name):
        return name
    stem = Path(recipe).stem if recipe and _is_file(recipe) else None
    folders = preset_folders(recipe)
    candidates = ([folders[0] / name / f"{stem}.yaml"] if stem else []) + [f / f"{name}.yaml" for f in folders]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        available = available_presets(recipe)
        raise ConfigError(
            f"--preset {name}: no such preset. Available: {', '.join(available) or 'none'} (in "
            f"{' and '.join(map(str, folders))}), or pass a preset file's path."
        )
    return str(found)


def available_presets(recipe: str | None) -> list[str]:
    stem = Path(recipe).stem if recipe and _is_file(recipe) else None
    names = set()
    for i, folder in enumerate(preset_folders(recipe)):
        names |= {p.stem for p in folder.glob("*.yaml")}
        if i == 0 and stem:
            names |= {p.parent.name for p in folder.glob(f"*/{stem}.yaml")}
    return sorted(names)


def _is_file(value: str) -> bool:
    return "\n" not in value and Path(value).is_file()


def shipped_recipes() -> list[str]:
    return sorted(shipped())


def _option(args: list[str], name: str) -> Iterator[tuple[int, str]]:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            yield i + 1, args[i + 1]
        elif arg.startswith(name + "="):
            yield i, arg.split("=", 1)[1]


def config_options(args: list[str]) -> list[tuple[int, str]]:
    """(index, value) of every `--config`/`-c` value, in command-line order."""
    return sorted([*_option(args, "--config"), *_option(args, "-c")])


def prepare_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(the arguments with recipe names resolved, implicit configs and presets inserted, the default config files)."""
    args, presets = _take_presets(list(args))
    for i, value in config_options(args):
        resolved = recipe_path(value)
        args[i] = resolved if args[i] == value else args[i].split("=", 1)[0] + "=" + resolved
    command = args[0] if args else None
    recipes = [(i, v) for i, v in config_options(args) if not is_preset(v)]
    ckpt = next((v for _, v in _option(args, "--ckpt_path")), None)
    base = [str(base_config())]
    default = default_recipe()
    if command == "fit" and ckpt and ckpt != "last" and not recipes:
        # a resume continues the run as it was made (recipe, presets, command line), in its own folder
        resumed = resume_config(ckpt)
        if resumed is not None:
            args = [command, "--config", resumed, *args[1:]]
            return _with_presets(args, presets, None, after=3), base
    if command in EVALUATION_COMMANDS and ckpt and not recipes:
        implicit = implicit_config(ckpt)
        if implicit is not None:
            args = [command, "--config", implicit, *args[1:]]
            return _with_presets(args, presets, None, after=3), base
        # no usable checkpoint: the default recipe lets the command line parse, and the checkpoint path
        # is then reported for what it is (project/engine/checkpoints.py); without one, it is reported here
        if default is None:
            check_checkpoint_path(ckpt, trusted=False)
    if recipes or command not in (*EVALUATION_COMMANDS, "fit"):
        # `--config X` is two arguments, `--config=X` one: the presets go right after the last recipe
        last, value = recipes[-1] if recipes else (0, None)
        return _with_presets(args, presets, value, after=last + 1), base
    # the default recipe, from the default config files, lies under everything on the command line
    if default is None:  # a fork that removed it, or names none
        if any(a in HELP for a in args):
            return _with_presets(args, presets, None, after=1), base  # help describes the keys, no recipe needed
        named = (
            f"the default recipe {settings.DEFAULT_RECIPE!r} is not there"
            if settings.DEFAULT_RECIPE
            else "no default recipe is set"
        )
        raise ConfigError(
            f"no --config given and {named}: pass --config RECIPE (shipped: {', '.join(shipped_recipes()) or 'none'}), "
            f"or set DEFAULT_RECIPE in {PACKAGE}/settings.py to your recipe's name"
        )
    return _with_presets(args, presets, default, after=1), [*base, default]


def recipe_run_name(args: list[str], defaults: list[str]) -> str | None:
    """The run name the recipe gives its logger (`trainer.logger.init_args.name`), read from the config
    files before presets stack over them: a preset that swaps the logger (mlflow, nologger) keeps it."""
    configs = [*defaults, *(v for _, v in config_options(args))]
    name = None
    for config in configs:
        if is_preset(config):
            continue
        content = load_config_value(config)  # one that cannot be read is reported when the config is parsed
        trainer = content.get("trainer") if isinstance(content, dict) else None
        logger = trainer.get("logger") if isinstance(trainer, dict) else None
        given = (logger.get("init_args") or {}).get("name") if isinstance(logger, dict) else None
        name = given if isinstance(given, str) and given else name
    return name


def presets_in(args: list[str]) -> list[str]:
    """The names of the presets a prepared command line stacks (`presets/quick.yaml` and
    `presets/quick/<recipe>.yaml` are both `quick`), in order."""
    configs = [v for _, v in config_options(args)]
    folders = [Path(v).resolve().parent for v in configs if is_preset(v)]
    stems = [Path(v).stem for v in configs if is_preset(v)]
    return [stem if folder.name == PRESETS else folder.name for folder, stem in zip(folders, stems, strict=True)]


def _take_presets(args: list[str]) -> tuple[list[str], list[str]]:
    """(`args` without its `--preset NAME` and `--preset=NAME`, the names in order)."""
    rest, names = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--preset":
            if i + 1 >= len(args) or args[i + 1].startswith("-"):
                raise ConfigError("--preset needs a name, e.g. --preset debug")
            names.append(args[i + 1])
            i += 2
            continue
        if arg.startswith("--preset="):
            names.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return rest, names


def _with_presets(args: list[str], presets: list[str], recipe: str | None, after: int) -> list[str]:
    """`args` with each preset's `--config FILE` inserted at `after`, in the order given."""
    inserted = [a for name in presets for a in ("--config", preset_path(name, recipe))]
    return [*args[:after], *inserted, *args[after:]]
