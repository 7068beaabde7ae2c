"""Where the TensorBoard callbacks write: the SummaryWriters of the trainer's TensorBoard loggers.

A callback that finds no TensorBoardLogger idles: the recipes list these callbacks for everyone, and a run
logged elsewhere is not a mistake. One info line says so for all of them (none under fast_dev_run, which
announces that it switched logging off).
"""

import io
import time
import wave
import weakref

import lightning as L
import numpy as np
from lightning.pytorch import loggers
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.audio import metadata as audio_metadata
from torch import Tensor

from project.engine.errors import ConfigError
from project.engine.internals import tensorboard_event_writer


class TensorBoardLogger(loggers.TensorBoardLogger):
    """Lightning's TensorBoard logger without the `epoch` scalar Lightning adds to every logged step: its card
    sorted above train/ and val/, and the epoch is in the progress lines already. Arguments as Lightning's."""

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)


def tensorboards(trainer: L.Trainer) -> list:
    """The SummaryWriters of the trainer's TensorBoard loggers; none off global rank 0, where loggers write nothing."""
    if not trainer.is_global_zero:
        return []
    return [logger.experiment for logger in trainer.loggers if isinstance(logger, loggers.TensorBoardLogger)]


_told: "weakref.WeakSet[L.Trainer]" = weakref.WeakSet()


class TensorBoardView(L.Callback):
    """A callback that only draws into TensorBoard. `self.active` says, from `setup` on, whether this run has a
    TensorBoardLogger; the same on every rank, so ranks that sum states together agree.

    During a fit, pictures keep `min_interval` seconds apart (`draw_when_due`; a few tenths of a second each on
    a small CPU, a whole epoch of a small net on a GPU) and the last one skipped is drawn when the fit ends.

    A view says what it reads of the model: `needs`, the keys its validation and test steps must return (the
    model lists them in its `step_outputs`), and `needs_hparams`, hyperparameters such as `num_classes`. A model
    that offers less is refused at `setup`, in one line, before any step.
    """

    needs: tuple[str, ...] = ()
    needs_hparams: tuple[str, ...] = ()
    active = True
    min_interval = 0.0
    _pending = None  # the latest skipped validation's drawing, owed at the fit's end

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        check_model_feeds(self, pl_module)
        self.active = any(isinstance(logger, loggers.TensorBoardLogger) for logger in trainer.loggers)
        if not self.active and not trainer.fast_dev_run and trainer not in _told:
            _told.add(trainer)
            idle = [type(c).__name__ for c in trainer.callbacks if isinstance(c, TensorBoardView)]
            rank_zero_info(f"{', '.join(idle)}: these draw into TensorBoard only; this run has none, so they idle.")
        self._last_drawn = time.monotonic()
        self._pending = None

    def writes(self, trainer: L.Trainer) -> bool:
        """Whether this process writes: work done only for TensorBoard is skipped when not."""
        return self.active and trainer.is_global_zero

    def draw_when_due(self, trainer: L.Trainer, work) -> None:
        """Run `work` (a callable drawing one evaluation's pictures) now outside a fit, or when `min_interval`
        has passed since the last picture; else keep it for `on_fit_end` in place of any kept before."""
        if trainer.state.fn != TrainerFn.FITTING or time.monotonic() - self._last_drawn >= self.min_interval:
            work()
            self._pending, self._last_drawn = None, time.monotonic()
        else:
            self._pending = work

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            self._pending()
            self._pending = None


def add_captioned_audio(writer, tag: str, clip: Tensor, sample_rate: int, caption: str, step: int, about: str) -> None:
    """A mono clip in [-1, 1] in TensorBoard's AUDIO tab, with `caption` stored beside it.
    TensorBoard (2.21) shows no per-clip caption (its audio plugin serves every label as ""), only the
    tag and `about` behind the card's info button, both kept from the tag's first step: they should hold
    what stays the same from step to step. The `caption` stays in the event file for other readers."""
    samples = (clip.detach().float().cpu().clamp(-1, 1).numpy() * np.iinfo(np.int16).max).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(samples.tobytes())
    # The audio plugin's tensor form: a (k, 2) string tensor of (encoded clip, markdown caption) rows
    tensor = TensorProto(
        dtype=7,  # DT_STRING
        tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1), TensorShapeProto.Dim(size=2)]),
        string_val=[buffer.getvalue(), caption.encode()],
    )
    meta = audio_metadata.create_summary_metadata(
        display_name=tag, description=about, encoding=audio_metadata.Encoding.Value("WAV")
    )
    summary = Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=tensor)])
    tensorboard_event_writer(writer).add_summary(summary, step)


def check_model_feeds(view: L.Callback, pl_module: L.LightningModule) -> None:
    """Refuse, in one line, a model that does not return or hold what `view` reads (its `needs`, `needs_hparams`)."""
    model = type(pl_module).__name__
    offered = tuple(getattr(pl_module, "step_outputs", ()) or ())
    missing = [name for name in getattr(view, "needs", ()) if name not in offered]
    if missing:
        raise ConfigError(
            f"{type(view).__name__} reads {', '.join(missing)} from the model's validation and test steps, which "
            f"{model} does not return (its step_outputs: {', '.join(offered) or 'none'}): remove the view from "
            "trainer.callbacks, or return those from the steps and list them in the model's `step_outputs`."
        )
    hparams = getattr(pl_module, "hparams", {})
    lacking = [name for name in getattr(view, "needs_hparams", ()) if hparams.get(name) is None]
    if lacking:
        raise ConfigError(
            f"{type(view).__name__} needs the model's {', '.join(lacking)}, which {model} does not have among its "
            "hyperparameters: remove the view from trainer.callbacks for this model."
        )
