"""Show what the audio model hears: a few log-mel spectrograms and their clips in TensorBoard, once per
validation epoch, each captioned with the true word and the one the model predicted."""

import lightning as L
import torch

from project import metrics
from project.callbacks import figures
from project.callbacks.writers import TensorBoardView, add_captioned_audio, class_names, has_tensorboard, tensorboards
from project.errors import ConfigError


class LogSpectrograms(TensorBoardView):
    """Logs the log-mel features (`val/spectrogram/<i>`, time in seconds along x, mel bands up y) and the
    waveforms (`val/audio/<i>`) of `count` clips spread over the validation set (the first clip of
    batches evenly apart, so a set ordered by class shows several classes; the same clips every epoch),
    titled "true: 7 · predicted: 1" with the data's class names.

    Needs a net with a `log_mel` front end (`RNNClassifier`). Idles without a TensorBoardLogger. The
    first batch's clips are kept on the host at that batch's end (their features computed once more,
    for `count` clips, one host sync each); the pictures are drawn at the validation epoch's end, on global rank 0 only,
    at most every `min_interval` seconds of a fit (the last one skipped is drawn when the fit ends;
    0 draws every epoch).
    """

    def __init__(self, count: int = 4, min_interval: float = 60.0):
        self.count = count
        self.min_interval = min_interval
        self.kept: list | None = None

    def picks(self, batches: int) -> dict[int, int]:
        """{batch index: clips taken from it}: `count` clips from batches evenly apart over `batches`."""
        chosen = [i * batches // self.count for i in range(self.count)] if batches else [0] * self.count
        return {b: chosen.count(b) for b in chosen}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if dataloader_idx != 0 or trainer.sanity_checking or not has_tensorboard(trainer):
            return
        batches = trainer.num_val_batches[0] if trainer.num_val_batches else 0
        take = self.picks(int(batches) if batches != float("inf") else 0).get(batch_idx, 0)
        if not take:
            return
        # Checked here, not in `setup`: the net has just run on this data, so a net for other data
        # (from a checkpoint, say) has already been reported as such by the Classifier
        if not hasattr(pl_module.net, "log_mel"):
            raise ConfigError(
                f"LogSpectrograms needs a net with a `log_mel` front end such as RNNClassifier, got "
                f"{type(pl_module.net).__name__}; remove the callback from trainer.callbacks."
            )
        if batch_idx == min(self.picks(int(batches) if batches != float("inf") else 0)):
            self.kept = []  # the first picked batch of this validation
        (waves, lengths), labels = batch
        waves, lengths = waves[:take], lengths[:take]
        with torch.no_grad():
            features, frames = pl_module.net.log_mel(waves, lengths)  # (B, T, F), (B,)
        self.kept = (self.kept or []) + [
            (feature[:n].cpu(), wave[:length].cpu(), int(label), int(pred))
            for feature, n, wave, length, label, pred in zip(
                features.float(),
                frames.tolist(),
                waves.float(),
                lengths.tolist(),
                labels[:take].tolist(),
                outputs["preds"][:take].tolist(),
                strict=False,
            )
        ]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.kept:
            return
        kept, self.kept, step = self.kept, None, trainer.global_step

        def work() -> None:
            self._draw(trainer, pl_module, kept, step)

        self.draw_when_due(trainer, work)

    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, kept: list, step: int) -> None:
        net = pl_module.net
        rate = int(net.sample_rate)
        hop = getattr(net.log_mel, "hop_length", None)
        names = class_names(trainer, pl_module.hparams.num_classes)
        for i, (feature, wave, label, pred) in enumerate(kept):
            caption = f"true: {names[label]} · predicted: {names[pred]}"
            image = figures.spectrogram(feature, hop / rate if hop else None, caption)
            audio_tag, picture_tag = f"{metrics.VAL_AUDIO}{i}", f"{metrics.VAL_SPECTROGRAM}{i}"
            # The same clip every epoch (the validation loader keeps its order), so its true class can
            # title the audio card; TensorBoard cannot show the prediction of each step under a player
            title = f"{audio_tag} · true: {names[label]}"
            description = f"The prediction at each step is in the title of {picture_tag} (IMAGES tab), same step."
            for writer in tensorboards(trainer):
                writer.add_image(picture_tag, image, step)
                add_captioned_audio(writer, audio_tag, wave, rate, caption, step, title, description)
