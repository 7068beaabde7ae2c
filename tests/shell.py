"""Commands run as a shell runs them, without paying for torch's and Lightning's imports in each.

Every command is a process of its own, forked from one server process that imported the modules the
commands run (`-m project.cli`) and everything they import, once: it has its own exit status and its own
stdout and stderr at the file-descriptor level, and runs its module afresh as `__main__`. What is shared
is the imports, about 10 s of CPU a process on a 2-core machine (torch and Lightning).
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Reads [[argv, env], ...] as JSON on stdin; writes [[exit status, stdout, stderr], ...] as JSON on stdout.
# argv is what follows the interpreter: ["-m", module, *args] or ["-c", code, *args].
_SERVER = r"""
import importlib, json, os, runpy, sys, tempfile, traceback

commands = json.load(sys.stdin)
# The shared imports: each module run with -m, and all it imports, then the module itself forgotten,
# so that each command runs it afresh as __main__, as `python -m` does
for module in {argv[1] for argv, _ in commands if argv[0] == "-m"}:
    importlib.import_module(module)
    del sys.modules[module]

def child(argv, env, out, err):
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.environ.clear()
    os.environ.update(env)
    status = 0
    try:
        if argv[0] == "-m":
            sys.path[0] = os.getcwd()  # as `python -m` has it (`-c` has "")
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c", *argv[2:]]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    except SystemExit as stop:  # as the interpreter reads it
        code = stop.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
        status = 0 if code is None else code if isinstance(code, int) else 1
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)

results = []
for argv, env in commands:
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(argv, env, files[0].fileno(), files[1].fileno())
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    texts = []
    for f in files:
        f.seek(0)
        texts.append(f.read().decode(errors="replace"))
    results.append([status, *texts])
print("\n" + json.dumps(results))  # the last line: whatever the imports printed comes before it
"""


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def run_commands(
    commands: list[list[str]], env: dict[str, str] | None = None, envs: list[dict[str, str] | None] | None = None
) -> list[Done]:
    """Runs each command line (`[sys.executable, "-m" | "-c", ...]`) in the repository's root, one after the
    other, in `env` (default: this process's), or in its own entry of `envs` where that is not None."""
    env = dict(os.environ if env is None else env)
    envs = [env if e is None else e for e in (envs or [None] * len(commands))]
    if not hasattr(os, "fork"):  # one interpreter per command
        pairs = zip(commands, envs, strict=True)
        ran = [subprocess.run(c, cwd=ROOT, env=e, capture_output=True, text=True, timeout=300) for c, e in pairs]
        return [Done(p.returncode, p.stdout, p.stderr) for p in ran]
    request = json.dumps([[command[1:], e] for command, e in zip(commands, envs, strict=True)])
    server = subprocess.run(
        [sys.executable, "-c", _SERVER], input=request, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    if server.returncode != 0:
        raise RuntimeError(f"the command server failed:\n{server.stderr[-3000:]}")
    return [Done(*result) for result in json.loads(server.stdout.splitlines()[-1])]
