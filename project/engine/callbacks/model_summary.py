"""The model in one line at the start of a fit, in place of Lightning's table: that lists the loss and metric
modules with 0 parameters, and a FLOPs column of zeros unless the model sets an `example_input_array`."""

import lightning as L
from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from torch.nn.parameter import is_lazy


class BriefModelSummary(ModelSummary):
    """`Model: Classifier (net: AirbenchNet): 146 K parameters, 288 of them frozen, 0.6 MB`: the modules that
    hold parameters, their count and their size. Rank 0 only; `enable_model_summary: false` turns it off."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            print(describe(pl_module))


def describe(model: L.LightningModule) -> str:
    """The line `BriefModelSummary` prints; parameters not yet materialised (lazy modules) are left out."""
    parameters = [p for p in model.parameters() if not is_lazy(p)]
    holders = [
        f"{name}: {type(child).__name__}"
        for name, child in model.named_children()
        if any(True for _ in child.parameters())
    ]
    total = sum(p.numel() for p in parameters)
    frozen = sum(p.numel() for p in parameters if not p.requires_grad)
    size_mb = sum(p.numel() * p.element_size() for p in parameters) / 1e6
    parts = f" ({', '.join(holders)})" if holders else ""
    frozen_text = f", {get_human_readable_count(frozen).strip()} of them frozen" if frozen else ""
    return (
        f"Model: {type(model).__name__}{parts}: {get_human_readable_count(total).strip()} parameters{frozen_text}, "
        f"{size_mb:.1f} MB"
    )
