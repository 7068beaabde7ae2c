"""Speech recognition: audio in, text out. CTC over per-frame scores, greedy decoding, word and character error
rates."""

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics.text import CharErrorRate, WordErrorRate

from project.engine import optim
from project.engine.errors import ConfigError, DataError
from project.tasks.speech_recognition import metrics
from project.tasks.speech_recognition.decoding import greedy_decode
from project.tasks.speech_recognition.vocabulary import BLANK, Vocabulary

Inputs = Tensor | tuple[Tensor, ...]
Transcripts = tuple[Tensor, Tensor]  # token ids padded (B, L), lengths (B,)


class SpeechRecognizer(L.LightningModule):
    """CTC (Graves et al., 2006) around a net that scores every frame: the net learns which character each
    frame holds, or the blank, without any alignment of the transcript to the audio.

    Batches are `(inputs, (tokens (B, L), lengths (B,)))`: a source whose targets are token sequences
    (project/engine/data/targets.py), token 0 being the blank. A tuple of `inputs` is passed to `net` as
    separate arguments (audio: `(waveforms, lengths)`).

    Args:
        net: maps inputs to per-frame logits (B, T, len(vocabulary)) and each row's frame count (B,), as
            `project.models.RNNFrameClassifier` does; a net that returns only the logits has every row's
            frames counted as T. The engine builds it with the data's sizes: `num_classes` is the vocabulary's
            size, the blank included.
        vocabulary: the tokens, `<blank>` first, then one character each; by default the data's `classes`,
            read at `setup`. Kept in the checkpoint, so `test` and `predict` need nothing else to read text.
        optimizer: built from the config; None is AdamW at its defaults.
        scheduler: optional; one that takes `total_steps` and is not given it (OneCycleLR) gets the run's
            length and is stepped every batch; any other is stepped every epoch.
        compile: wrap `net` in torch.compile.
    """

    # What the validation and test steps hand the views (project/tasks/speech_recognition/views.py)
    step_outputs = ("hypotheses", "references")

    def __init__(
        self,
        net: nn.Module,
        vocabulary: list[str] | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        compile: bool = False,
    ):
        super().__init__()
        if vocabulary is not None:
            _vocabulary(vocabulary, "model.init_args.vocabulary")
        # Through the CLI the net is recorded as its config (class_path, init_args), so a checkpoint alone rebuilds
        # the model; a net built in Python is not a hyperparameter (its weights are in the checkpoint)
        self.save_hyperparameters()
        if isinstance(self.hparams.get("net"), nn.Module):
            del self.hparams["net"]
        self.net = net
        self._compile, self._compiled = compile, False
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.vocabulary = None if vocabulary is None else Vocabulary(vocabulary)
        self.val_wer, self.val_cer = WordErrorRate(), CharErrorRate()
        self.test_wer, self.test_cer = WordErrorRate(), CharErrorRate()
        self._width_checked = False
        self._unalignable = torch.zeros((), dtype=torch.int64)
        self._told_unalignable = False

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        classes = getattr(datamodule, "classes", None)
        if classes is not None and (not classes or classes[0] != BLANK):
            source = getattr(datamodule, "source", datamodule)
            raise DataError(
                f"SpeechRecognizer needs transcripts, but {type(source).__name__} gives classes "
                f"({', '.join(map(str, classes[:4]))}{', ...' if len(classes) > 4 else ''}): a source of "
                f"transcripts names its tokens as its classes, {BLANK!r} first, as SpeechManifest "
                "(project.tasks.speech_recognition) does."
            )
        data = None if classes is None else _vocabulary(classes, f"the data's classes ({type(datamodule).__name__})")
        if self.vocabulary is None:
            if data is None:
                raise ConfigError(
                    "model.init_args.vocabulary is not set and the data gives no `classes` to take it from; set "
                    f"model.init_args.vocabulary to the tokens, {BLANK!r} first, then one character each."
                )
            self.vocabulary = data
            self.hparams["vocabulary"] = list(data.tokens)
        elif data is not None and data != self.vocabulary:
            raise ConfigError(
                f"The model reads {len(self.vocabulary)} tokens ({self.vocabulary.describe()}) but the data "
                f"writes its transcripts in {len(data)} ({data.describe()}): token ids would mean other "
                "characters. Evaluate a checkpoint on data with its training vocabulary (a manifest source's "
                "`vocabulary`, or its training manifest)."
            )
        if self._compile and not self._compiled:  # the net is built by now (the engine may build it at setup)
            self.net.compile()  # in place: the state dict's keys stay plain
            self._compiled = True

    def forward(self, x: Inputs) -> tuple[Tensor, Tensor]:
        """Per-frame logits (B, T, C) and frame counts (B,)."""
        out = self.net(*x) if isinstance(x, tuple | list) else self.net(x)
        logits, frames = out if isinstance(out, tuple | list) else (out, None)
        if frames is None:
            frames = torch.full(logits.shape[:1], logits.shape[1], dtype=torch.int64, device=logits.device)
        if not self._width_checked:
            self._check_width(logits)
        return logits, frames

    def _check_width(self, logits: Tensor) -> None:
        if logits.ndim != 3:
            raise ConfigError(
                f"model.net ({type(self.net).__name__}) returned logits of shape {tuple(logits.shape)}; CTC needs "
                "one row of scores per frame, (B, T, tokens): use a per-frame net such as "
                "project.models.RNNFrameClassifier."
            )
        if self.vocabulary is not None and logits.shape[-1] != len(self.vocabulary):
            raise ConfigError(
                f"model.net scores {logits.shape[-1]} tokens a frame but the vocabulary has {len(self.vocabulary)} "
                f"(the blank and {len(self.vocabulary) - 1} characters); leave the net's num_classes unset "
                "(model.init_args.net.init_args.num_classes), so that the data sets it."
            )
        self._width_checked = True

    def ctc_loss(self, logits: Tensor, frames: Tensor, transcripts: Transcripts) -> Tensor:
        """CTC loss averaged over the batch, each utterance's divided by its transcript's length. An utterance
        with fewer frames than its transcript needs cannot be aligned: it adds 0 instead of infinity."""
        tokens, lengths = transcripts
        log_probs = logits.float().log_softmax(dim=-1).transpose(0, 1)  # (T, B, C): float32 under any autocast
        if log_probs.is_cuda and torch.are_deterministic_algorithms_enabled():
            # CUDA's CTC backward has no deterministic kernel (torch refuses it under `trainer.deterministic`); the
            # CPU's is, and for (T, B, characters) it costs little beside the net
            log_probs, tokens, frames, lengths = (t.cpu() for t in (log_probs, tokens, frames, lengths))
        loss = F.ctc_loss(log_probs, tokens, frames, lengths, blank=0, reduction="mean", zero_infinity=True)
        return loss.to(logits.device)

    def training_step(self, batch: tuple[Inputs, Transcripts], batch_idx: int) -> Tensor:
        x, y = batch
        transcripts = self._transcripts(y)
        logits, frames = self(x)
        loss = self.ctc_loss(logits, frames, transcripts)
        self.log(metrics.TRAIN_LOSS, loss, on_step=True, on_epoch=True, batch_size=len(frames))
        # Counted on the device, read once an epoch: no host sync a step
        self._unalignable = self._unalignable + (frames < transcripts[1]).sum()
        return loss

    def on_train_epoch_start(self) -> None:
        self._unalignable = torch.zeros((), dtype=torch.int64, device=self.device)

    def on_train_epoch_end(self) -> None:
        count = int(self._unalignable)
        if count and not self._told_unalignable:
            self._told_unalignable = True
            rank_zero_warn(
                f"{count} training utterances this epoch had fewer frames than their transcripts have characters: "
                "CTC cannot align them, so they add nothing to the loss. Give the net a shorter hop "
                "(model.init_args.net.init_args.hop_ms), or check those transcripts against their audio."
            )

    def validation_step(self, batch: tuple[Inputs, Transcripts], batch_idx: int) -> dict[str, list[str]]:
        return self._evaluate(batch, self.val_wer, self.val_cer, (metrics.VAL_LOSS, metrics.VAL_WER, metrics.VAL_CER))

    def test_step(self, batch: tuple[Inputs, Transcripts], batch_idx: int) -> dict[str, list[str]]:
        names = (metrics.TEST_LOSS, metrics.TEST_WER, metrics.TEST_CER)
        return self._evaluate(batch, self.test_wer, self.test_cer, names)

    def predict_step(self, batch: tuple[Inputs, Any], batch_idx: int) -> dict[str, list[str]]:
        """The columns of predictions.csv: the hypothesis, and the reference where the data has transcripts."""
        x, y = batch
        columns = {metrics.HYPOTHESIS: self.transcribe(*self(x))}
        if isinstance(y, tuple | list):  # a folder of new recordings has no transcripts (labels of -1)
            columns[metrics.REFERENCE] = self.texts(y)
        return columns

    def transcribe(self, logits: Tensor, frames: Tensor) -> list[str]:
        """Greedy decoding of per-frame logits into text."""
        return [self.vocabulary.decode(ids) for ids in greedy_decode(logits, frames)]

    def texts(self, transcripts: Transcripts) -> list[str]:
        """Padded token ids -> the transcripts' text."""
        tokens, lengths = transcripts
        return [self.vocabulary.decode(row[:n]) for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True)]

    def _evaluate(
        self, batch: tuple[Inputs, Transcripts], wer: WordErrorRate, cer: CharErrorRate, names: tuple[str, str, str]
    ) -> dict[str, list[str]]:
        x, y = batch
        transcripts = self._transcripts(y)
        logits, frames = self(x)
        hypotheses, references = self.transcribe(logits, frames), self.texts(transcripts)
        # Error rates over the whole split: their states sum errors and reference lengths over every batch
        wer.update(hypotheses, references)
        cer.update(hypotheses, references)
        loss_name, wer_name, cer_name = names
        size = len(frames)
        self.log(loss_name, self.ctc_loss(logits, frames, transcripts), on_epoch=True, sync_dist=True, batch_size=size)
        self.log(wer_name, wer, on_epoch=True, prog_bar=True, batch_size=size)
        self.log(cer_name, cer, on_epoch=True, batch_size=size)
        return {"hypotheses": hypotheses, "references": references}

    @staticmethod
    def _transcripts(y: Any) -> Transcripts:
        if not (isinstance(y, tuple | list) and len(y) == 2):
            kind = f"a tensor of shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
            raise DataError(
                f"SpeechRecognizer needs transcripts as targets (token sequences, padded with their lengths), but "
                f"the data gives {kind}: use a source whose labels are a list of token tensors, such as "
                "project.tasks.speech_recognition.SpeechManifest."
            )
        return y[0], y[1]

    def prediction_summary(self, columns: dict[str, list]) -> str | None:
        """The word error rate over the predicted utterances with a reference (printed by the predictions writer)."""
        if metrics.REFERENCE not in columns:
            return None
        rate = WordErrorRate()(columns[metrics.HYPOTHESIS], columns[metrics.REFERENCE])
        return f"WER {float(rate):.4f} on the {len(columns[metrics.REFERENCE])} with a reference"

    def configure_optimizers(self) -> Any:
        return optim.configure(self, self.optimizer, self.scheduler)


def _vocabulary(tokens: Any, what: str) -> Vocabulary:
    try:
        return Vocabulary([str(t) for t in tokens])
    except ValueError as err:
        raise ConfigError(f"{what}: {err}") from err
