from project.data.audio_datamodule import AudioDataModule
from project.data.cifar10 import CIFAR10DataModule
from project.data.fsdd import FSDD
from project.data.image_folder import ImageFolderDataModule
from project.data.speech_commands import SpeechCommands
from project.data.wav_folder import WavFolder

__all__ = ["FSDD", "AudioDataModule", "CIFAR10DataModule", "ImageFolderDataModule", "SpeechCommands", "WavFolder"]
