"""benchmarks/overhead.py, the check a developer runs after touching the fit path, runs every part in smoke mode:
the paired fits train alike, the split names the template's hooks, and no training step reads from the device."""

import importlib.util
import sys
from pathlib import Path

OVERHEAD = Path(__file__).resolve().parents[1] / "benchmarks" / "overhead.py"


def test_the_overhead_check_runs_in_smoke_mode(capsys):
    spec = importlib.util.spec_from_file_location("overhead_check", OVERHEAD)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the recipe names its synthetic source by this module's name
    try:
        spec.loader.exec_module(module)
        table = module.main(["--smoke"])
    finally:
        del sys.modules[spec.name]
    out = capsys.readouterr().out
    assert "warning" not in out, out  # the template's fit and the plain loop reached the same validation accuracy
    for row in ("template / plain loop, wall time", "per training step", "per validation", "per fit"):
        assert row in table, table
    assert "GPU sync), the logging steps (every 10) aside | **0** of 16 |" in table, table
    assert "`[Callback]FiniteLossGuard.on_train_batch_end`" in table or "other hooks together" in table, table
    assert "the rest: Lightning's loop between hooks" in table, table
