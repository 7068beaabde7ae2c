from project.data.audio_datamodule import AudioDataModule
from project.data.chunks import LitDataAudio, LitDataImages
from project.data.datamodule import InMemoryDataModule
from project.data.image_datamodule import ImageDataModule
from project.data.source import AudioSource, ImageSource, Samples, Source
from project.data.sources.cifar10 import CIFAR10
from project.data.sources.features import FeatureFiles
from project.data.sources.fsdd import FSDD
from project.data.sources.image_folder import ImageFolder
from project.data.sources.speech_commands import SpeechCommands
from project.data.sources.wav_folder import WavFolder

__all__ = [
    "CIFAR10",
    "FSDD",
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
    "SpeechCommands",
    "WavFolder",
]
