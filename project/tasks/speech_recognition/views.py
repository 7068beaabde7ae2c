"""What the recognizer hears and writes, in TensorBoard: a few validation utterances' spectrograms titled with
their reference and hypothesis, with their audio; a table of the utterances with the most word errors.
The loss, WER and CER curves come from the module's own logging."""

import heapq
from typing import Any

import lightning as L
import torch

from project.engine.callbacks import figures
from project.engine.callbacks.writers import TensorBoardView, add_captioned_audio, tensorboards
from project.engine.errors import ConfigError
from project.tasks.speech_recognition import metrics
from project.tasks.speech_recognition.decoding import edit_distance


class TranscribedSpectrograms(TensorBoardView):
    """Logs the log-mel features (`val/spectrogram/<n>`, seconds along x, mel bands up y) and the waveform
    (`val/audio/<n>`) of the first `count` validation utterances, each titled with its reference and what the
    model heard. The same utterances every epoch, so the cards show the hypotheses improve.

    Needs a net with a `log_mel` front end (`RNNFrameClassifier`); drawn at most every `min_interval` seconds
    of a fit (0: every validation).
    """

    needs = ("hypotheses", "references")

    def __init__(self, count: int = 4, min_interval: float = 60.0):
        if count < 1:
            raise ConfigError(f"TranscribedSpectrograms: count must be at least 1, got {count}.")
        self.count = count
        self.min_interval = min_interval

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        net = getattr(pl_module, "net", None)
        if self.active and not hasattr(net, "log_mel"):
            raise ConfigError(
                f"TranscribedSpectrograms needs a net with a `log_mel` front end such as RNNFrameClassifier, got "
                f"{type(net).__name__}; remove the callback from trainer.callbacks."
            )

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.kept: list[tuple[torch.Tensor, str, str]] = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if len(self.kept) >= self.count or trainer.sanity_checking or not self.writes(trainer):
            return
        (waves, lengths), _ = batch
        for i in range(min(self.count - len(self.kept), len(lengths))):
            wave = waves[i, : int(lengths[i])].float().cpu()
            self.kept.append((wave, outputs["references"][i], outputs["hypotheses"][i]))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not getattr(self, "kept", None):
            return
        shown, step = [], trainer.global_step
        for wave, reference, hypothesis in self.kept:
            with torch.no_grad():
                one = wave[None].to(pl_module.device)  # (1, T): alone, so no padding
                features, _ = pl_module.net.log_mel(one, torch.tensor([one.shape[1]], device=one.device))
            shown.append((features[0].cpu(), wave, reference, hypothesis))
        self.draw_when_due(trainer, lambda: self._draw(trainer, pl_module, shown, step))

    def _draw(self, trainer: L.Trainer, pl_module: L.LightningModule, shown: list, step: int) -> None:
        rate = int(pl_module.net.sample_rate)
        hop = getattr(pl_module.net.log_mel, "hop_length", None)
        for n, (features, wave, reference, hypothesis) in enumerate(shown):
            title = f"reference: {reference}\nheard: {hypothesis or '(nothing)'}"
            image = figures.spectrogram(features, hop / rate if hop else None, title)
            picture_tag, audio_tag = f"{metrics.VAL_SPECTROGRAM}{n}", f"{metrics.VAL_AUDIO}{n}"
            about = f"What the model heard at each step is in the title of {picture_tag} (IMAGES tab), same step."
            for writer in tensorboards(trainer):
                writer.add_image(picture_tag, image, step)
                add_captioned_audio(writer, audio_tag, wave, rate, title.replace("\n", " · "), step, about)


class WorstUtterances(TensorBoardView):
    """A table (TEXT tab) of the `count` utterances with the highest word error rate, after every validation
    (`val/worst_utterances`) and `test` (`test/worst_utterances`): the sample's name, its word errors over its
    reference's words, the reference and the hypothesis.

    Args:
        count: rows of the table.
        validation, test: after which evaluations to write it.
        min_interval: seconds of a fit between two validation tables; the last one skipped is written when the
            fit ends.
    """

    needs = ("hypotheses", "references")

    def __init__(self, count: int = 10, validation: bool = True, test: bool = True, min_interval: float = 60.0):
        if count < 1:
            raise ConfigError(f"WorstUtterances: count must be at least 1, got {count}.")
        self.count = count
        self.validation = validation
        self.test = test
        self.min_interval = min_interval

    def _start(self) -> None:
        self.worst: list[tuple[float, int, int, int, str, str, str]] = []  # a min-heap of the `count` worst
        self.seen = 0

    def _offer(self, trainer: L.Trainer, outputs: dict[str, Any], split: str) -> None:
        names = getattr(getattr(trainer.datamodule, f"{split}_set", None), "names", None)
        if trainer.world_size > 1:
            names = None  # each rank evaluates an interleaved share: positions are not the set's
        for hypothesis, reference in zip(outputs["hypotheses"], outputs["references"], strict=True):
            words = reference.split()
            errors = edit_distance(hypothesis.split(), words)
            name = names[self.seen] if names is not None and self.seen < len(names) else f"{split} #{self.seen}"
            # Ties go to the earlier utterance: -seen ranks it higher in the min-heap
            row = (errors / max(len(words), 1), errors, -self.seen, len(words), name, reference, hypothesis)
            (heapq.heappush if len(self.worst) < self.count else heapq.heappushpop)(self.worst, row)
            self.seen += 1

    def _write(self, trainer: L.Trainer, tag: str) -> None:
        if trainer.sanity_checking or not self.writes(trainer) or not self.worst:
            return
        table, step = worst_table(sorted(self.worst, reverse=True)), trainer.global_step

        def write() -> None:
            for writer in tensorboards(trainer):
                writer.add_text(tag, table, step)

        self.draw_when_due(trainer, write)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.validation and self.writes(trainer) and not trainer.sanity_checking:
            self._offer(trainer, outputs, "val")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.validation:
            self._write(trainer, metrics.VAL_WORST)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.test and self.writes(trainer):
            self._offer(trainer, outputs, "test")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.test:
            self._write(trainer, metrics.TEST_WORST)


def worst_table(rows: list[tuple[float, int, int, int, str, str, str]]) -> str:
    """Markdown, one row per utterance: name, WER (errors/words), reference, hypothesis."""
    lines = ["| utterance | WER (errors / words) | reference | hypothesis |", "| --- | --- | --- | --- |"]
    for rate, errors, _, words, name, reference, hypothesis in rows:
        cells = (name, f"{rate:.2f} ({errors} / {words})", reference, hypothesis or "(nothing)")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
