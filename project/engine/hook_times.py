"""Where a fit's time goes, split into training steps, validations and the rest of the fit, and named hook by hook:
a Lightning profiler. `--trainer.profiler project.engine.hook_times.HookTimes` prints its table when the fit ends;
benchmarks/overhead.py (and the CIFAR-10 example's benchmark) set one against a plain PyTorch loop's own clock.

Lightning wraps every hook (of each callback, of the module, data module and strategy) and a few steps of its loops
in the profiler; this one keeps each action's time exclusive of the actions inside it, and the wall time between
them by phase:
- "steps": the training batches, from the batch's fetch to its last hook;
- "validations": a validation run, with the rest of its epoch's end (epoch metrics, checkpoints);
- "fit": everything else (setup, the sanity check, the fit's end), the time before the first and after the last
  profiled action included by `close`.
`watch(module)` adds `self.log` and each torchmetrics `update` of the module as actions of their own (the
benchmarks call it; from the command line they are part of the step that calls them).
"""

import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.profilers import PassThroughProfiler, Profiler

PHASES = ("steps", "validations", "fit")

# Work a plain loop does too; every other action is a callback's, the module's own hook, self.log or a metric
SHARED_WORK = (
    ".training_step",
    ".backward",
    ".optimizer_step",
    ".validation_step",
    ".on_after_batch_transfer",
    ".batch_to_device",
    ".transfer_batch_to_device",
    "train_dataloader_next",
    "val_next",
    "run_training_epoch",
    "run_training_batch",
    ".lr_scheduler_step",
    ".optimizer_zero_grad",
    ".configure_optimizers",
)


class HookTimes(Profiler):
    """Each profiled action's exclusive time, by phase, and each phase's time (the module docstring says which).

    Args:
        clock: seconds; `time.thread_time` counts the main thread's CPU time, which other work on a busy machine
            moves less than the wall clock.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        self.clock = clock
        self.phase = "fit"
        self.phase_time: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)  # profiled actions a phase, for the profiler's own cost
        self.exclusive: dict[tuple[str, str], float] = defaultdict(float)
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.module_class: type = L.LightningModule
        self._stack: list[list] = []
        self._mark = clock()
        self._sanity = False
        self._validated = False

    def _switch(self, phase: str, now: float) -> None:
        self.phase_time[self.phase] += now - self._mark
        self._mark, self.phase = now, phase

    def start(self, action_name: str) -> None:
        now = self.clock()
        hook = action_name.rsplit(".", 1)[-1]
        if hook == "on_sanity_check_start":
            self._sanity = True
        elif hook == "on_sanity_check_end":
            self._sanity = False
        elif action_name in ("run_training_epoch", "[_TrainingEpochLoop].train_dataloader_next") or (
            hook == "on_train_epoch_start"
        ):
            if action_name == "run_training_epoch":
                self._validated = False
            if self.phase != "steps":
                self._switch("steps", now)
        elif hook in ("on_validation_model_zero_grad", "on_validation_start") and not self._sanity:
            self._validated = True
            if self.phase != "validations":
                self._switch("validations", now)
        elif hook in ("on_train_end", "on_fit_end") and self.phase != "fit":
            self._switch("fit", now)
        self.calls[self.phase] += 1
        self._stack.append([action_name, self.phase, now, 0.0])

    def stop(self, action_name: str) -> None:
        now = self.clock()
        while self._stack and self._stack[-1][0] != action_name:
            self._stack.pop()  # an action left open by an exception
        if not self._stack:
            return
        name, phase, started, inner = self._stack.pop()
        spent = now - started
        self.exclusive[phase, name] += spent - inner
        self.counts[phase, name] += 1
        if self._stack:
            self._stack[-1][3] += spent
        if name == "run_training_epoch" and self._validated:
            self._switch("validations", now)  # the epoch's end belongs to its validation

    def close(self) -> None:
        """Count the time since the last action in its phase (call once the fit has returned)."""
        self._switch(self.phase, self.clock())

    def watch(self, module: torch.nn.Module) -> None:
        """Time `module.log` and each torchmetrics `update` of `module` as actions of their own."""
        from torchmetrics import Metric

        self.module_class = type(module)
        module.log = self._timed(module.log, f"[LightningModule]{type(module).__name__}.log")
        for attribute, child in module.named_modules():
            if isinstance(child, Metric) and attribute:
                child.update = self._timed(child.update, f"[Metric]{attribute}.update")

    def _timed(self, function: Callable, action: str) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.profile(action):
                return function(*args, **kwargs)

        return timed

    def summary(self) -> str:
        """Each phase's seconds, then its ten costliest actions (Lightning prints it when the command ends)."""
        self.close()
        lines = [f"{'phase':<12}{'seconds':>10}  costliest actions (exclusive seconds, calls)"]
        for phase in PHASES:
            actions = sorted(((s, n) for (p, n), s in self.exclusive.items() if p == phase), reverse=True)[:10]
            lines.append(f"{phase:<12}{self.phase_time[phase]:>10.3f}")
            lines += [f"{'':<24}{s:>10.4f} {self.counts[phase, n]:>7}  {short(n)}" for s, n in actions]
        return "\n".join(lines)


def own_cost_per_call(clock: Callable[[], float] = time.perf_counter, repeats: int = 20000) -> float:
    """Seconds `HookTimes` adds to one profiled action over Lightning's default profiler (which does nothing)."""
    ours, none = HookTimes(clock), PassThroughProfiler()

    def loop(profiler: Profiler) -> float:
        start = clock()
        for _ in range(repeats):
            with profiler.profile("[Callback]X.on_train_batch_end"):
                pass
        return clock() - start

    return max(0.0, min(loop(ours) for _ in range(3)) - min(loop(none) for _ in range(3))) / repeats


def phase_seconds(profiler: HookTimes, total: float, own: float) -> dict[str, float]:
    """Seconds per phase of a profiled fit that took `total` by the profiler's clock, the profiler's own cost (`own`
    per action) taken out."""
    out = {k: profiler.phase_time[k] - own * profiler.calls[k] for k in ("steps", "validations")}
    out["fit"] = total - own * sum(profiler.calls.values()) - sum(out.values())
    return out


def template_hook(name: str, module_class: type, shared: tuple[str, ...] = ()) -> bool:
    """Whether a profiled action is the template's own: a callback's hook, `self.log`, a metric's update, or a hook
    the module's class defines (Lightning's defaults, which a bare Trainer calls too, are its loop's). Actions
    named with any of `shared` do work the plain loop does too (a recipe's Lookahead, say)."""
    if name.endswith(SHARED_WORK) or any(part in name for part in shared):
        return False
    found = re.fullmatch(r"\[LightningModule\](\w+)\.(\w+)", name)
    if found is None or found.group(2) == "log":
        return True
    return getattr(module_class, found.group(2), None) is not getattr(L.LightningModule, found.group(2), None)


def own_hooks(
    profiler: HookTimes, units: dict[str, int], own: float, shared: tuple[str, ...] = ()
) -> dict[tuple[str, str], float]:
    """{(phase, action): seconds per unit of the phase (a step, a validation, the fit)} of the template's actions
    (`template_hook`)."""
    return {
        (phase, name): max(0.0, seconds - own * profiler.counts[phase, name]) / max(units[phase], 1)
        for (phase, name), seconds in profiler.exclusive.items()
        if template_hook(name, profiler.module_class, shared)
    }


def short(action: str) -> str:
    """A profiler action's name, a ModelCheckpoint's told apart by its monitor rather than its whole state key."""
    found = re.search(r"ModelCheckpoint\{.*'monitor': ([^,]+),.*\}", action)
    return action.replace(found.group(0), f"ModelCheckpoint(monitor={found.group(1)})") if found else action


UNITS = {"steps": ("µs", 1e6, "a step"), "validations": ("ms", 1e3, "a validation"), "fit": ("ms", 1e3, "a fit")}
LABELS = {
    "steps": "per training step",
    "validations": "per validation (with its epoch's end: epoch metrics, checkpoints)",
    "fit": "per fit (setup, sanity check, the fit's end)",
}


def split_rows(medians: dict[str, float], sides: list[str]) -> list[str]:
    """Markdown rows: the template's extra per step, validation and fit, and each side's figure. `medians` holds
    "<side> <phase>" seconds per unit; the sides include "template" and "plain"."""
    rows = []
    for phase, label in LABELS.items():
        unit, scale, _ = UNITS[phase]
        values = {side: medians[f"{side} {phase}"] * scale for side in sides}
        rows.append(
            f"| {label}: the template's extra ({', '.join(values)}) | "
            f"**{values['template'] - values['plain']:+.0f} {unit}** "
            f"({', '.join(f'{v:.0f}' for v in values.values())} {unit}) |"
        )
    return rows


def hook_rows(medians: dict[str, float], named: dict[tuple[str, str], float], min_shown: float = 1.0) -> list[str]:
    """Markdown table: each of the template's actions costing at least `min_shown` (µs a step, ms a validation or
    fit), the others summed, and the rest of the template's extra, which no hook holds: Lightning's loop."""
    rows = ["| phase | where the template's extra goes | cost |", "| --- | --- | --- |"]
    for phase in PHASES:
        unit, scale, per = UNITS[phase]
        listed = sorted(((s, n) for (p, n), s in named.items() if p == phase), reverse=True)
        shown = [(s, n) for s, n in listed if s * scale >= min_shown]
        rows += [f"| {phase} | `{short(n)}` | {s * scale:.1f} {unit} {per} |" for s, n in shown]
        if len(listed) > len(shown):
            rest = sum(s for s, _ in listed[len(shown) :])
            rows.append(
                f"| {phase} | {len(listed) - len(shown)} other hooks together | {rest * scale:.1f} {unit} {per} |"
            )
        loop = medians[f"template {phase}"] - medians[f"plain {phase}"] - sum(s for s, _ in listed)
        rows.append(f"| {phase} | the rest: Lightning's loop between hooks | {loop * scale:.1f} {unit} {per} |")
    return rows
