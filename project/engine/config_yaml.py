"""Every config the template reads is YAML read with bounds: on its size, on what its aliases expand to, on
its nesting, and with duplicate keys refused (else the last one silently wins).

A 1 KB file of nested aliases (a "billion laughs") loads at once in PyYAML, but whatever walks or copies
the result (jsonargparse does both) then needs gigabytes. The checks run on YAML's node graph, before
anything is built, in linear time. `use_bounded_yaml` puts jsonargparse's own YAML loading through them.
"""

import re
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import get_loader, set_loader

from project.engine.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; a MB is far past any real one
MAX_VALUES = 100_000  # values once every alias is expanded; the shipped recipes hold a few hundred
MAX_DEPTH = 100  # nesting of mappings and lists
_MERGE = "tag:yaml.org,2002:merge"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def config_problem(text: str, source: str) -> str | None:
    """What makes the YAML `text` (read from `source`) too large, a bomb, or ambiguous; None if it is fine.
    Syntax errors are left to the parser, which reports their line."""
    if len(text) > MAX_CONFIG_BYTES:
        return _too_large(source, len(text))
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    return None if root is None else _graph_problem(root, source)


def _too_large(source: str, size: int) -> str:
    return (
        f"{source} is {size:,} bytes long, past the {MAX_CONFIG_BYTES:,} a config may have: it is not a config "
        "file (pass the file that holds `trainer:`, `model:` and `data:`)"
    )


def _graph_problem(root: yaml.Node, source: str) -> str | None:
    """Walks the node graph once (iteratively: depth is bounded here, not by Python's stack)."""
    expanded: dict[int, int] = {}  # node id -> values under it with aliases expanded
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            expanded[key] = 1 + sum(expanded[id(c)] for c in _children(node))
            if expanded[key] > MAX_VALUES:
                return (
                    f"{source}: its aliases (*name) expand to more than {MAX_VALUES:,} values, refused as a YAML "
                    f"bomb (a config holds a few hundred); write the values out instead of nesting aliases"
                )
            continue
        if key in expanded:
            continue
        if key in on_path:
            return f"{source}, line {node.start_mark.line + 1}: an alias refers to a value that contains it; remove it"
        if len(on_path) >= MAX_DEPTH:
            return f"{source}, line {node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep: not a config"
        duplicate = _duplicate_key(node)
        if duplicate is not None:
            first, again = duplicate
            return (
                f"{source}, line {again.start_mark.line + 1}: the key `{again.value}` appears twice in one mapping "
                f"(lines {first.start_mark.line + 1} and {again.start_mark.line + 1}); YAML would keep only the "
                "last: remove one"
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in expanded)
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _duplicate_key(node: yaml.Node) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
            continue
        if (key.tag, key.value) in seen:
            return seen[(key.tag, key.value)], key
        seen[(key.tag, key.value)] = key
    return None


def read_config_text(path: Path) -> str:
    """The text of the config file `path`, refused unread when it is larger than any config."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(_too_large(str(path), size))
    return path.read_text()


def load_config_file(path: Path) -> Any:
    """`yaml.safe_load` of the config file `path` once it passed the checks above."""
    return load_config_text(read_config_text(path), str(path))


def load_config_text(text: str, source: str) -> Any:
    """`yaml.safe_load` of config `text` (from `source`, named in the error) once it passed the checks above."""
    problem = config_problem(text, source)
    if problem is not None:
        raise ConfigError(problem)
    return yaml.safe_load(text)


def load_run_config(text: str, source: str) -> Any:
    """A run's record (its config.yaml, the config in a checkpoint) as `load_config_text` reads it, any YAML error
    in one line naming `source` and the line: a Python tag (`!!python/object/apply:os.system`) is never built."""
    try:
        return load_config_text(text, source)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}, line {mark.line + 1}" if mark is not None else source
        tag = re.search(r"tag '([^']+)'", str(err.problem or ""))
        if tag:
            shown = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise ConfigError(
                f"{where}: the YAML tag {shown} asks for a Python object, which a config never holds and which is "
                "not built (nothing was run): remove the tag"
            ) from None
        problem = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise ConfigError(f"{where} is not valid YAML: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {err}") from None


def load_config_value(value: str) -> Any:
    """A `--config` value's content: the file it names, else the value as YAML text; None when it cannot be
    read (the parse that follows reports why)."""
    try:
        is_file = "\n" not in value and Path(value).is_file()
        return load_config_file(Path(value)) if is_file else load_config_text(value, "--config")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigError):
        return None


_jsonargparse_yaml_load = get_loader("yaml")


def _bounded_yaml_load(stream: str, path: str = "") -> Any:
    problem = config_problem(stream, str(path) or "a YAML value")
    if problem is not None:
        raise ConfigError(problem)
    return _jsonargparse_yaml_load(stream)


def use_bounded_yaml() -> None:
    """Make jsonargparse read YAML through the checks above (idempotent)."""
    set_loader("yaml", _bounded_yaml_load, exceptions=(yaml.YAMLError,))
