"""What the network learned, in TensorBoard's PROJECTOR tab: the penultimate features of test samples,
their true and predicted classes as metadata, and for image data the images as the sprite."""

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from project.engine.callbacks import figures
from project.engine.callbacks.writers import TensorBoardView, tensorboards
from project.engine.errors import ConfigError
from project.engine.sizes import class_names
from project.tasks.classification import metrics


def features_module(net: nn.Module, name: str | None) -> nn.Module:
    """The module whose input is the net's feature vector: `name` (as in `net.named_modules()`, e.g.
    "head" or "layers.4"), by default the last `nn.Linear` the net registers, its classifier head."""
    modules = dict(net.named_modules())
    if name is not None:
        if name not in modules:
            raise ConfigError(
                f"TestEmbeddings: the net ({type(net).__name__}) has no module named {name!r}; its modules are "
                f"{', '.join(repr(n) for n in modules if n)}. Set the callback's `module` to one of them."
            )
        return modules[name]
    linear = [module for module in modules.values() if isinstance(module, nn.Linear)]
    if not linear:
        raise ConfigError(
            f"TestEmbeddings: the net ({type(net).__name__}) has no nn.Linear to take the features from; set the "
            "callback's `module` to the name of the module whose input is the feature vector."
        )
    return linear[-1]


class TestEmbeddings(TensorBoardView):
    """Logs `test/embeddings` to TensorBoard's projector at the end of `test`: the input of `module` (a forward
    hook: any net works unchanged), flattened to (N, D); of a module run on several views (test-time
    augmentation), the first. The true class is the metadata's first column: the projector colours nothing
    until "Color by" is chosen, and lists that column first.

    Args:
        max_samples: the first this many test samples of global rank 0 (the projector slows down past
            a few thousand, and the sprite holds at most 8192 x 8192 pixels).
        module: name of the module in `net` whose input is the feature vector (`net.named_modules()`);
            None: the last nn.Linear.
        thumbnail: side in pixels of each image in the sprite (image data only).
    """

    __test__ = False  # not a pytest test class, whatever its name
    needs = ("preds",)
    needs_hparams = ("num_classes",)

    def __init__(self, max_samples: int = 1000, module: str | None = None, thumbnail: int = 32):
        if max_samples < 1:
            raise ConfigError(f"TestEmbeddings: max_samples must be at least 1, got {max_samples}.")
        self.max_samples = max_samples
        self.module = module
        self.thumbnail = thumbnail
        self._hook = None

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.features, self.labels, self.preds, self.images = [], [], [], []
        self.kept = 0
        self._batch: Tensor | None = None
        if not self.writes(trainer):
            return
        target = features_module(_net(pl_module, "TestEmbeddings"), self.module)
        self._hook = target.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        if self._batch is None:
            self._batch = inputs[0].detach()

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch = None

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        room = self.max_samples - self.kept
        if self._hook is None or self._batch is None or room <= 0:
            return
        inputs, labels = batch
        # airbench's test-time augmentation stacks its views along the batch, the plain view first
        features = self._batch[: len(labels)][:room]
        self.features.append(features.reshape(len(features), -1).float().cpu())
        self.labels.append(labels[:room].cpu())
        self.preds.append(outputs["preds"][:room].cpu())
        if isinstance(inputs, Tensor) and inputs.ndim == 4:  # images (B, C, H, W): the sprite
            self.images.append(figures.thumbnails(inputs[:room], self.thumbnail))
        self.kept += len(features)
        self._batch = None

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if not self.features:
            if self.writes(trainer):
                rank_zero_warn(
                    "TestEmbeddings saw no features: the module it hooks never ran in the test. Set its `module`."
                )
            return
        names = class_names(trainer.datamodule, pl_module.hparams.num_classes)
        labels, preds = torch.cat(self.labels).tolist(), torch.cat(self.preds).tolist()
        metadata = [[names[y], names[p], str(y == p)] for y, p in zip(labels, preds, strict=True)]
        features = torch.cat(self.features)  # (N, D)
        images = torch.cat(self.images) if self.images else None
        for writer in tensorboards(trainer):
            writer.add_embedding(
                features,
                metadata=metadata,
                label_img=images,
                global_step=trainer.global_step,
                tag=metrics.TEST_EMBEDDINGS,
                metadata_header=["label", "predicted", "correct"],
            )
        self.features, self.labels, self.preds, self.images = [], [], [], []


def _net(pl_module: L.LightningModule, view: str) -> nn.Module:
    net = getattr(pl_module, "net", None)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"{view} reads the model's `net`, which {type(pl_module).__name__} does not have.")
    return net
