"""Where the TensorBoard callbacks write: the SummaryWriters of the trainer's TensorBoard loggers, and
the class names to label their pictures with.

A callback that finds no TensorBoardLogger (CSV, MLflow, `logger: false`) does nothing, silently: the
recipes list these callbacks for everyone, and a run logged elsewhere is not a mistake.
"""

import io
import wave

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.audio import metadata as audio_metadata
from torch import Tensor

from project.internals import tensorboard_event_writer


def tensorboards(trainer: L.Trainer) -> list:
    """The SummaryWriters of the trainer's TensorBoard loggers; empty off global rank 0, where
    Lightning's loggers write nothing."""
    if not trainer.is_global_zero:
        return []
    return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def has_tensorboard(trainer: L.Trainer) -> bool:
    """Whether anything would be written: work done only for TensorBoard can be skipped when not."""
    return trainer.is_global_zero and any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers)


def class_names(trainer: L.Trainer, num_classes: int) -> list[str]:
    """The data's class names (its `classes`), else the class indices as text."""
    names = getattr(trainer.datamodule, "classes", None) if trainer.datamodule is not None else None
    return [str(name) for name in names] if names is not None else [str(i) for i in range(num_classes)]


def add_captioned_audio(writer, tag: str, clip: Tensor, sample_rate: int, caption: str, step: int) -> None:
    """A mono clip in [-1, 1] with a caption shown under its player in TensorBoard's AUDIO tab."""
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
        display_name=tag, description="", encoding=audio_metadata.Encoding.Value("WAV")
    )
    summary = Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=tensor)])
    tensorboard_event_writer(writer).add_summary(summary, step)
