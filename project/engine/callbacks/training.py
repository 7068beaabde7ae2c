"""Training tricks that act between optimizer steps, as Lightning callbacks (chosen in YAML under
`trainer.callbacks`). Each keeps its work on the device: no host sync per step."""

import lightning as L
import torch
from torch import Tensor, nn

from project.engine.errors import ConfigError
from project.engine.internals import foreach_copy_, foreach_lerp_


class Lookahead(L.Callback):
    """Pull the weights towards their running average every few steps (airbench's "lookahead" EMA).

    Every `every_n_steps` steps from `start_epoch`, the average moves towards the weights by 1 - rho, rho =
    decay^every_n_steps · progress^decay_power, and the weights are set to it. The last step sets the weights to
    the average: worth a few tenths of a point in short runs (at each epoch's end it would throw steps away). The
    average is in the checkpoint and includes BatchNorm's statistics, so they stay consistent.

    Args:
        start_epoch: first epoch with averaging.
        every_n_steps: steps between averaging updates.
        decay: per-step decay of the average at the end of training.
        decay_power: how the decay ramps up with progress through the run.
    """

    def __init__(self, start_epoch: int = 0, every_n_steps: int = 5, decay: float = 0.95, decay_power: float = 3.0):
        super().__init__()
        self.start_epoch = start_epoch
        self.every_n_steps = every_n_steps
        self.decay = decay
        self.decay_power = decay_power
        self.average: list[Tensor] | None = None
        self.total_steps = 1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.total_steps = int(trainer.estimated_stepping_batches)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        self.step(pl_module, trainer.current_epoch, trainer.global_step, self.total_steps)

    def step(self, module: nn.Module, epoch: int, step: int, total_steps: int) -> None:
        """One averaging update if this step calls for one; also usable outside Lightning."""
        if epoch >= self.start_epoch and step % self.every_n_steps == 0:
            tensors = _averaged_tensors(module)
            if self.average is None:
                self.average = [t.detach().clone() for t in tensors]
            else:
                rho = self.decay**self.every_n_steps * (step / total_steps) ** self.decay_power
                with torch.no_grad():
                    foreach_lerp_(self.average, tensors, 1 - rho)
                    foreach_copy_(tensors, self.average)
        if step >= total_steps:
            self.copy_back(module)

    def copy_back(self, module: nn.Module) -> None:
        if self.average is not None:
            with torch.no_grad():
                foreach_copy_(_averaged_tensors(module), self.average)

    def state_dict(self) -> dict:
        return {"average": self.average}

    def load_state_dict(self, state_dict: dict) -> None:
        self.average = state_dict["average"]

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is None:
            self.average = None  # a new run (even on a trainer that fitted before) starts a new average
        elif self.average is not None:
            # Restored from a checkpoint, perhaps saved on another device: move it next to the weights
            self.average = [a.to(pl_module.device) for a in self.average]


def _averaged_tensors(module: nn.Module) -> list[Tensor]:
    """Floating-point parameters and buffers (BatchNorm statistics), in a fixed order."""
    return [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]


class FreezeParameters(L.Callback):
    """Stop training the named parameters after `after_epochs` epochs (airbench's whitening bias).

    Their gradients are dropped after each backward pass, so the optimizer skips them (no momentum, no weight
    decay); switching `requires_grad` would make a compiled net recompile mid-run.

    Args:
        names: parameter names as in `LightningModule.named_parameters()`, e.g. `net.whiten.bias`.
        after_epochs: epochs of training before they freeze.
    """

    def __init__(self, names: list[str], after_epochs: int):
        super().__init__()
        self.names = names
        self.after_epochs = after_epochs
        self.frozen: list[nn.Parameter] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        named = dict(pl_module.named_parameters())
        missing = [n for n in self.names if n not in named]
        if missing:
            raise ConfigError(
                f"FreezeParameters: no parameter named {missing} in {type(pl_module).__name__}; "
                f"the names are those of named_parameters(), e.g. {list(named)[:4]}."
            )
        self.frozen = [named[n] for n in self.names]

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.apply(trainer.current_epoch)

    def apply(self, epoch: int) -> None:
        """Drop the gradients if `epoch` is past the training window; also usable outside Lightning."""
        if epoch >= self.after_epochs:
            for p in self.frozen:
                p.grad = None
