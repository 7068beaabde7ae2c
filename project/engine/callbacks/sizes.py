"""Sizes a data module tells only once it is set up (one that reads its files in `setup`): what waited for them is
built first thing in the run's `setup`, after the data module's and before the model's own (engine/sizes.py)."""

import inspect

import lightning as L

from project.engine.sizes import DeferredNet, data_sizes


class SizesFromData(L.Callback):
    """Builds the model's deferred nets (`DeferredNet`) with the data's sizes and puts each in its place, and fills
    the model's own size arguments (hyperparameters named like a size, e.g. `num_classes`) left unset, which the
    model reads in its `setup`. The checkpoint then holds them, so evaluating it needs no data first."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        deferred = [(path, module) for path, module in pl_module.named_modules() if isinstance(module, DeferredNet)]
        hparams = pl_module.hparams
        parameters = inspect.signature(type(pl_module).__init__).parameters
        unset = [name for name in parameters if name in hparams and hparams[name] is None]
        if (not deferred and not unset) or trainer.datamodule is None:
            return
        source = f"the data ({type(trainer.datamodule).__name__})"
        sizes = data_sizes(trainer.datamodule)
        for path, placeholder in deferred:
            owner, _, attribute = path.rpartition(".")
            setattr(pl_module.get_submodule(owner), attribute, placeholder.spec.build(sizes, source))
            if placeholder.name in hparams:
                hparams[placeholder.name] = placeholder.spec.config()
        for name in unset:
            if name in sizes:
                hparams[name] = sizes[name]
