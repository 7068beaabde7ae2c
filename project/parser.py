"""The command line's parser: Lightning's, with errors a user can read.

A parse error prints one `error:` line and a hint to `--help`, not the whole usage (about 90 lines
for `fit`). A config file that is not valid YAML, is empty, or holds something other than a mapping of
keys is named with the line at fault; jsonargparse reports such files as `"<unicode string>", line 2`.
"""

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser

from project.config_yaml import config_problem, read_config_text, use_bounded_yaml
from project.errors import DEBUG_ENV, USER_ERROR_EXIT, ConfigError, debug_enabled

use_bounded_yaml()  # every YAML jsonargparse reads: bounded aliases and size, no duplicate keys


class ProjectArgumentParser(LightningArgumentParser):
    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debug_enabled():  # a caller that catches errors, or debugging
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {message.strip()}\n")
        sys.stderr.write(f"Run `{prog} --help` for the accepted keys (set {DEBUG_ENV}=1 for the details).\n")
        self.exit(USER_ERROR_EXIT)

    def parse_path(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> Namespace:
        # Checked first: jsonargparse parses the file's text, and its errors have lost the file's name
        problem = config_file_problem(Path(path))
        if problem is not None:
            self.error(problem)
        return super().parse_path(path, *args, **kwargs)


def config_file_problem(path: Path) -> str | None:
    """What makes `path` unusable as a config file (naming the file and line), or None if it reads as one."""
    try:
        text = read_config_text(path)
    except ConfigError as err:
        return str(err)
    except (OSError, UnicodeDecodeError) as err:
        return f"cannot read the config file {path}: {err}"
    bounded = config_problem(text, str(path))  # before parsing it whole: a bomb, or a key given twice
    if bounded is not None:
        return bounded
    try:
        content = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        context = err.context
        if context and err.context_mark is not None and err.context_mark is not mark:
            context = f"{context} started on line {err.context_mark.line + 1},"
        problem = " ".join(str(p) for p in (context, err.problem) if p)
        lines = text.splitlines()
        tabbed = mark is not None and mark.line < len(lines) and "\t" in lines[mark.line]
        tabs = " (YAML indents with spaces, never tabs)" if tabbed else ""
        return f"{where} is not valid YAML: {problem}{tabs}"
    except yaml.YAMLError as err:
        return f"{path} is not valid YAML: {err}"
    if content is None:
        return f"the config file {path} is empty: it should hold keys such as `trainer:`, `model:` or `data:`"
    if not isinstance(content, dict):
        return (
            f"the config file {path} holds a {type(content).__name__} at the top level: it should hold "
            "keys such as `trainer:`, `model:` or `data:`, each followed by a colon"
        )
    return None
