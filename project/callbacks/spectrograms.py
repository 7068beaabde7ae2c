"""Show what the audio model hears: a few log-mel spectrograms and their clips in TensorBoard, once per
validation epoch, each titled with the true word and the one the model predicted."""

import lightning as L
import torch

from project import metrics
from project.callbacks import figures
from project.callbacks.reports import ShownSamples
from project.callbacks.writers import TensorBoardView, add_captioned_audio, class_names, has_tensorboard, tensorboards
from project.errors import ConfigError


class LogSpectrograms(TensorBoardView):
    """Logs the log-mel features (`val/spectrogram/<class>`, time in seconds along x, mel bands up y) and
    the waveforms (`val/audio/<class>`) of `count` validation clips of different true classes, titled
    "true: seven · predicted: three": misclassified clips first, one per class, then correct ones.

    Needs a net with a `log_mel` front end (`RNNClassifier`). Idles without a TensorBoardLogger. Each
    validation batch's labels and predictions are read back (one host sync a batch) until `count`
    classes have an error shown; the chosen clips are kept on the host. The pictures are drawn at the
    validation epoch's end, on global rank 0 only, at most every `min_interval` seconds of a fit (the
    last one skipped is drawn when the fit ends; 0 draws every epoch).
    """

    def __init__(self, count: int = 4, min_interval: float = 60.0):
        if count < 1:
            raise ConfigError(f"LogSpectrograms: count must be at least 1, got {count}.")
        self.count = count
        self.min_interval = min_interval

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.samples = ShownSamples(self.count, per_class=1, correct_too=True)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if dataloader_idx != 0 or trainer.sanity_checking or self.samples.full or not has_tensorboard(trainer):
            return
        # Checked here, not in `setup`: the net has just run on this data, so a net for other data
        # (from a checkpoint, say) has already been reported as such by the Classifier
        if not hasattr(pl_module.net, "log_mel"):
            raise ConfigError(
                f"LogSpectrograms needs a net with a `log_mel` front end such as RNNClassifier, got "
                f"{type(pl_module.net).__name__}; remove the callback from trainer.callbacks."
            )
        (waves, lengths), labels = batch
        labels, preds, lengths = labels.tolist(), outputs["preds"].tolist(), lengths.tolist()
        self.samples.offer(labels, preds, lambda i: (waves[i, : lengths[i]].float().cpu(), labels[i], preds[i]))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        chosen = self.samples.chosen() if hasattr(self, "samples") else []
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
        names = class_names(trainer, pl_module.hparams.num_classes)
        for feature, wave, label, pred in kept:
            caption = f"true: {names[label]} · predicted: {names[pred]}"
            image = figures.spectrogram(feature, hop / rate if hop else None, caption)
            audio_tag, picture_tag = f"{metrics.VAL_AUDIO}{names[label]}", f"{metrics.VAL_SPECTROGRAM}{names[label]}"
            # A card per true class, so its title holds; TensorBoard shows no caption under a player
            description = f"The prediction at each step is in the title of {picture_tag} (IMAGES tab), same step."
            for writer in tensorboards(trainer):
                writer.add_image(picture_tag, image, step)
                add_captioned_audio(writer, audio_tag, wave, rate, caption, step, description)
