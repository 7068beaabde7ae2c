"""A stand-in for your own transcribed audio (tests/stand_ins.py says what a stand-in is): a few tiny
utterances and their JSON-lines manifests (tests/speech_format.py)."""

from pathlib import Path

from tests.speech_format import write_manifests
from tests.stand_ins import StandIn


def speech_manifest(folder: Path) -> list[str]:
    manifests = write_manifests(folder, train=16, val=4, test=4)
    return [f"--data.source.init_args.{split}={path}" for split, path in manifests.items()] + [
        "--data.sample_rate=8000"
    ]


STAND_INS: dict[str, StandIn] = {"project.tasks.speech_recognition.SpeechManifest": speech_manifest}
