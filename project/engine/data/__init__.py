"""Data for any task: a source (project/engine/data/source.py) plugged into a DataModule that owns loading,
splits, folds and streaming. YAML names them as `project.engine.data.<Class>`."""

from project.engine.data.audio_datamodule import AudioDataModule
from project.engine.data.chunks import LitDataAudio, LitDataImages
from project.engine.data.datamodule import InMemoryDataModule
from project.engine.data.image_datamodule import ImageDataModule
from project.engine.data.source import AudioSource, ImageSource, Samples, Source
from project.engine.data.sources.features import FeatureFiles
from project.engine.data.sources.image_folder import ImageFolder
from project.engine.data.sources.wav_folder import WavFolder

__all__ = [
    "AudioDataModule",
    "AudioSource",
    "FeatureFiles",
    "ImageDataModule",
    "ImageFolder",
    "ImageSource",
    "InMemoryDataModule",
    "LitDataAudio",
    "LitDataImages",
    "Samples",
    "Source",
    "WavFolder",
]
