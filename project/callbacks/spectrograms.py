"""Show what the audio model hears: a few log-mel spectrograms and their clips in TensorBoard, once per
validation epoch."""

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from project.callbacks.reports import draws
from project.errors import ConfigError


class LogSpectrograms(L.Callback):
    """Logs the log-mel features of the first `count` clips of the first validation batch.

    Needs a net with a `log_mel` front end (`RNNClassifier`) and a TensorBoardLogger. Runs on
    global rank 0 only and reads back one small image per clip, once per validation epoch.
    """

    def __init__(self, count: int = 4):
        self.count = count

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage in ("fit", "validate"):  # the stages that validate
            draws(trainer, self)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx != 0 or dataloader_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        # Checked here, not in `setup`: the net has just run on this data, so a net for other data
        # (from a checkpoint, say) has already been reported as such by the Classifier
        if not hasattr(pl_module.net, "log_mel"):
            raise ConfigError(
                f"LogSpectrograms needs a net with a `log_mel` front end such as RNNClassifier, got "
                f"{type(pl_module.net).__name__}; remove the callback from trainer.callbacks."
            )
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not loggers:
            return
        (waves, lengths), labels = batch
        features, frames = pl_module.net.log_mel(waves[: self.count], lengths[: self.count])  # (B, T, F)
        classes = getattr(trainer.datamodule, "classes", None)
        clips = waves[: self.count].float().cpu()
        for i, (image, n, label) in enumerate(
            zip(features.float().cpu(), frames.tolist(), labels.tolist(), strict=False)
        ):
            image = image[:n].T.flip(0)  # (F, T), low frequencies at the bottom
            image = (image - image.min()) / (image.max() - image.min()).clamp(min=1e-6)
            name = classes[label] if classes is not None else str(label)
            clip = clips[i, : int(lengths[i])].clamp(-1, 1)  # the waveform the model heard, padding cut off
            for logger in loggers:
                logger.experiment.add_image(f"spectrograms/{i}_{name}", image[None], trainer.global_step)
                rate = pl_module.net.sample_rate
                logger.experiment.add_audio(f"audio/{i}_{name}", clip[None], trainer.global_step, rate)
