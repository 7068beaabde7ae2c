"""Show what the audio model hears: a few log-mel spectrograms and their clips in TensorBoard, once per
validation epoch, each titled with the true word and the one the model predicted."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from project.engine.callbacks import figures
from project.engine.callbacks.writers import TensorBoardView, add_captioned_audio, tensorboards
from project.engine.errors import ConfigError
from project.engine.sizes import class_names
from project.tasks.classification import metrics


class LogSpectrograms(TensorBoardView):
    """Logs the log-mel features (`val/spectrogram/<class>`, seconds along x, mel bands up y) and the waveforms
    (`val/audio/true <class>, predicted <class>`) of `count` validation clips of different true classes, titled
    "true: seven · predicted: three": misclassified clips first, one per class, then correct ones. TensorBoard
    shows no caption under an audio player (2.21), so the card's name says what was heard.

    Needs a net with a `log_mel` front end (`RNNClassifier`). Candidates are picked on the device (no host sync a
    batch); pictures are drawn at most every `min_interval` seconds of a fit (0: every epoch).
    """

    needs = ("preds",)
    needs_hparams = ("num_classes",)

    def __init__(self, count: int = 4, min_interval: float = 60.0):
        if count < 1:
            raise ConfigError(f"LogSpectrograms: count must be at least 1, got {count}.")
        self.count = count
        self.min_interval = min_interval

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        net = getattr(pl_module, "net", None)
        if not hasattr(net, "log_mel"):
            raise ConfigError(
                f"LogSpectrograms needs a model whose `net` has a `log_mel` front end such as RNNClassifier, got "
                f"{type(net).__name__}; remove the callback from trainer.callbacks."
            )

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.samples = FirstPerClass(pl_module.hparams.num_classes)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if dataloader_idx != 0 or trainer.sanity_checking or not self.writes(trainer):
            return
        (waves, lengths), labels = batch
        self.samples.offer(waves, lengths, labels, outputs["preds"])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        chosen = self.samples.chosen(self.count) if hasattr(self, "samples") else []
        if not chosen:
            return
        kept, step = [], trainer.global_step
        for wave, label, pred in chosen:  # the features now: the net may have changed by the time they are drawn
            with torch.no_grad():
                one = wave[None].to(pl_module.device)  # (1, T): alone, so no padding
                features, _ = pl_module.net.log_mel(one, torch.tensor([one.shape[1]], device=one.device))
            kept.append((features[0].cpu(), wave, label, pred))  # (T', F)
        self.draw_when_due(trainer, lambda: self._draw(trainer, pl_module, kept, step))

    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, kept: list, step: int) -> None:
        rate = int(pl_module.net.sample_rate)
        hop = getattr(pl_module.net.log_mel, "hop_length", None)
        names = class_names(trainer.datamodule, pl_module.hparams.num_classes)
        for feature, wave, label, pred in kept:
            caption = f"true: {names[label]} · predicted: {names[pred]}"
            image = figures.spectrogram(feature, hop / rate if hop else None, caption)
            picture_tag = f"{metrics.VAL_SPECTROGRAM}{names[label]}"  # a card per true class, titled each step
            # TensorBoard shows no caption under a player: a card per (true, predicted) pair, its name the caption
            audio_tag = f"{metrics.VAL_AUDIO}true {names[label]}, predicted {names[pred]}"
            description = f"Its spectrogram: {picture_tag} (IMAGES tab), same step."
            for writer in tensorboards(trainer):
                writer.add_image(picture_tag, image, step)
                add_captioned_audio(writer, audio_tag, wave, rate, caption, step, description)


class FirstPerClass:
    """The first misclassified and the first correct clip of each true class, kept in (C, T) slots on the device,
    chosen with tensor ops (no host sync). `chosen(count)` reads them back once: errors first, then correct clips
    of classes with no error, up to `count`, in class order, each `(wave (T,), true, predicted)`."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.waves: Tensor | None = None  # (2, C, T): [0] the first error of each class, [1] the first correct one

    def offer(self, waves: Tensor, lengths: Tensor, labels: Tensor, preds: Tensor) -> None:
        right = labels == preds
        # (2, B, C): sample b is a candidate for slot (kind, class c)
        candidates = torch.stack((~right, right))[:, :, None] & F.one_hot(labels, self.num_classes).bool()[None]
        found = candidates.any(dim=1)  # (2, C)
        first = candidates.int().argmax(dim=1)  # (2, C): argmax returns the first of equal maxima
        if self.waves is None:
            shape = (2, self.num_classes)
            self.waves = waves.new_zeros((*shape, waves.shape[1]))
            self.lengths, self.preds = lengths.new_zeros(shape), preds.new_zeros(shape)
            self.have = torch.zeros(shape, dtype=torch.bool, device=waves.device)
        width = max(self.waves.shape[-1], waves.shape[1])  # shapes are known on the host: no sync
        self.waves = F.pad(self.waves, (0, width - self.waves.shape[-1]))
        take = found & ~self.have
        self.waves = torch.where(take[..., None], F.pad(waves, (0, width - waves.shape[1]))[first], self.waves)
        self.lengths = torch.where(take, lengths[first], self.lengths)
        self.preds = torch.where(take, preds[first], self.preds)
        self.have |= found

    def chosen(self, count: int) -> list[tuple[Tensor, int, int]]:
        if self.waves is None:
            return []
        have, lengths, preds = self.have.tolist(), self.lengths.tolist(), self.preds.tolist()
        wrong = [c for c in range(self.num_classes) if have[0][c]][:count]
        right = [c for c in range(self.num_classes) if have[1][c] and c not in wrong][: count - len(wrong)]
        picks = sorted([(c, 0) for c in wrong] + [(c, 1) for c in right])
        return [(self.waves[k, c, : lengths[k][c]].float().cpu(), c, preds[k][c]) for c, k in picks]
