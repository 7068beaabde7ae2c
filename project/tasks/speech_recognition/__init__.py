"""Speech recognition: CTC over per-frame scores of a recurrent net on log-mel features, greedy decoding, word
and character error rates; its TensorBoard views; a source for your own transcribed audio (JSON-lines
manifests)."""

from project.tasks.speech_recognition.manifest import SpeechManifest
from project.tasks.speech_recognition.module import SpeechRecognizer
from project.tasks.speech_recognition.views import TranscribedSpectrograms, WorstUtterances

__all__ = ["SpeechManifest", "SpeechRecognizer", "TranscribedSpectrograms", "WorstUtterances"]
