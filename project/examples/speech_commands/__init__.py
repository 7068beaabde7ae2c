"""Speech Commands v2: the source (official download, 35 words or 12) and its recipe in configs/."""

from project.examples.speech_commands.source import SpeechCommands

__all__ = ["SpeechCommands"]
