"""Audio loading: decoding, resampling, batching with true lengths, the data sets' splits, downloads, errors."""

import hashlib
import math
import tarfile

import numpy as np
import pytest
import soundfile
import torch

from project.engine.data import AudioDataModule, WavFolder
from project.engine.data.audio import AudioClips, pad_clips, read_audio, resample
from project.engine.data.audio_transforms import WaveformTrainTransform, delayed, resample_at
from project.engine.data.download import DownloadError
from project.engine.data.loaders import DeviceLoader
from tests.conftest import real_data_file
from tests.recipes import needs_recipe
from tests.wav_format import write_fsdd, write_speech_commands, write_wav, write_wav_folder

try:  # our examples; gone in a fork that removed them (python -m project.fork remove-examples)
    from project.examples.fsdd import FSDD
    from project.examples.speech_commands import SpeechCommands
    from project.examples.speech_commands.source import COMMANDS, SILENCE, UNKNOWN, WORDS
except ImportError:
    FSDD = SpeechCommands = COMMANDS = SILENCE = UNKNOWN = WORDS = None


def _sine(freq: float, rate: int, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(round(rate * seconds), dtype=torch.float64) / rate
    return torch.sin(2 * math.pi * freq * t)


def test_read_audio_mixes_to_mono_and_resamples(tmp_path):
    left, right = _sine(440, 16000, 0.5).numpy(), np.zeros(8000)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wave = read_audio(path, 8000)
    assert wave.dtype == torch.float32 and wave.shape == (4000,)
    expected = 0.5 * _sine(440, 8000, 0.5)
    assert torch.allclose(wave[100:-100].double(), expected[100:-100], atol=1e-3)


def test_resample_is_band_limited():
    passed = resample(_sine(1000, 44100).float(), 44100, 16000)
    assert passed.shape == (16000,)
    assert (passed - _sine(1000, 16000))[500:-500].abs().max() < 1e-3, "a tone well below Nyquist passes unchanged"
    aliased = resample(_sine(10000, 44100).float(), 44100, 16000)
    assert aliased[500:-500].abs().max() < 1e-2, "a tone above the new Nyquist frequency must be removed, not folded"
    up = resample(_sine(1000, 8000).float(), 8000, 22050)
    assert up.shape == (22050,) and (up - _sine(1000, 22050))[500:-500].abs().max() < 1e-3
    same = torch.randn(100)
    assert resample(same, 16000, 16000) is same


def test_unreadable_empty_and_non_audio_files_name_the_file(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(ValueError, match=r"Could not read .*notes\.wav as audio"):
        read_audio(text, 8000)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match=r"empty\.wav holds no audio samples"):
        read_audio(empty, 8000)
    with pytest.raises(ValueError, match=r"Could not read .*missing\.wav"):
        read_audio(tmp_path / "missing.wav", 8000)


def test_a_stray_file_in_a_wav_folder_stops_the_load_with_its_name(tmp_path):
    root = write_wav_folder(tmp_path / "sounds", per_class=4)
    (root / "tone" / "README.txt").write_text("recorded on my phone")
    with pytest.raises(ValueError, match=r"README\.txt as audio"):
        WavFolder(root).load("train", 8000)


def test_pad_clips_keeps_true_lengths_and_crops_to_a_fixed_length():
    clips = [torch.ones(3), torch.ones(5), torch.ones(1)]
    waves, lengths = pad_clips(clips)
    assert waves.shape == (3, 5) and lengths.tolist() == [3, 5, 1] and lengths.dtype == torch.int64
    assert waves.sum(1).tolist() == [3, 5, 1], "padding is zeros"
    waves, lengths = pad_clips(clips, length=4)
    assert waves.shape == (3, 4) and lengths.tolist() == [3, 4, 1]


def test_audio_clips_serve_whole_batches_as_float16():
    data = AudioClips([torch.randn(n) for n in (10, 20, 30)], torch.tensor([0, 1, 2]))
    (waves, lengths), labels = data.__getitems__([2, 0])
    assert waves.shape == (2, 30) and waves.dtype == torch.float16
    assert lengths.tolist() == [30, 10] and labels.tolist() == [2, 0]


def test_train_transform_changes_speed_and_pitch_and_keeps_padding_zero():
    rate = 8000
    waves = torch.stack([_sine(500, rate, 0.5).float(), torch.zeros(4000)])
    waves[1, :2000] = _sine(500, rate, 0.25).float()
    lengths = torch.tensor([4000, 2000])
    transform = WaveformTrainTransform(rate, speed=0.2, max_shift=0.05, gain_db=0.0)
    out, new_lengths = transform(waves, lengths, torch.Generator().manual_seed(3))
    assert out.shape[1] == math.ceil(4000 / 0.8) + 400
    assert (out.abs() * (torch.arange(out.shape[1]) >= new_lengths[:, None])).max() == 0, "nothing past a clip's end"
    # The pitch moves by the same factor as the duration: (length - shift) / length = 1 / rate
    first = out[0, : new_lengths[0]]
    nonzero = (first.abs() > 1e-3).nonzero()
    shift = int(nonzero[0]) - 1 if len(nonzero) else 0
    peak_hz = torch.fft.rfft(first[shift:]).abs().argmax().item() * rate / len(first[shift:])
    stretch = (new_lengths[0] - shift).item() / 4000
    assert peak_hz == pytest.approx(500 / stretch, rel=0.03)
    still = WaveformTrainTransform(rate, speed=0.0, max_shift=0.0, gain_db=0.0)
    same, same_lengths = still(waves, lengths, torch.Generator().manual_seed(0))
    assert torch.equal(same_lengths, lengths) and torch.equal(same[:, :4000], waves)
    # Without speed perturbation only the delay is paid for: the sinc interpolation gives the same samples
    shift = torch.tensor([3, 17])
    interpolated = resample_at(waves, lengths, torch.ones(2), shift.float(), 4100, zero_crossings=6)
    assert torch.allclose(delayed(waves, lengths, shift, 4100), interpolated, atol=1e-5)


@needs_recipe("fsdd")
def test_fsdd_usual_and_speaker_splits(tmp_path):
    root = write_fsdd(tmp_path, speakers=("george", "theo", "lucas"), takes=7)
    usual = FSDD(root, download=False, val_fraction=0.2, expected_recordings=0)
    files = usual._split_files()
    assert len(files["test"]) == 3 * 10 * 5, "takes 0-4 of every speaker and digit"
    assert len(files["train"]) + len(files["val"]) == 3 * 10 * 2 and len(files["val"]) == 12
    assert not {p for p, _ in files["val"]} & {p for p, _ in files["train"]}
    held_out = FSDD(root, split="speaker", test_speaker="lucas", download=False, expected_recordings=0)
    held_out = held_out._split_files()
    assert {p.name.split("_")[1] for p, _ in held_out["test"]} == {"lucas"}
    assert "lucas" not in {p.name.split("_")[1] for p, _ in held_out["train"] + held_out["val"]}
    clips, labels, names = usual.load("test", 8000)
    assert len(clips) == 150 and sorted(set(labels.tolist())) == list(range(10))
    assert names[0] == "recordings/0_george_0.wav"
    with pytest.raises(ValueError, match="test_speaker='nobody' is not an FSDD speaker"):
        FSDD(root, split="speaker", test_speaker="nobody")


@needs_recipe("fsdd")
def test_fsdd_rejects_files_not_named_like_fsdd(tmp_path):
    root = write_fsdd(tmp_path, takes=6)
    write_wav(root / "recordings" / "hello.wav", np.zeros(100), 8000)
    with pytest.raises(ValueError, match=r"hello\.wav is not named"):
        FSDD(root, download=False, expected_recordings=0).load("train", 8000)


@needs_recipe("fsdd")
def test_fsdd_downloads_and_verifies_the_release_archive(tmp_path, serve_dir):
    """The tagged release's layout, served from a local stand-in for GitHub."""
    source = write_fsdd(tmp_path / "src" / "free-spoken-digit-dataset-1.0.10", takes=6)
    archive = tmp_path / "site" / "v1.0.10.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=source.name)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    url = f"{serve_dir(archive.parent)}/{archive.name}"

    with pytest.raises(DownloadError, match="MD5"):
        FSDD(tmp_path / "bad", url=url, md5="0" * 32).prepare()
    data = FSDD(tmp_path / "data", url=url, md5=md5, expected_recordings=2 * 10 * 6)
    data.prepare()
    assert data.recordings == tmp_path / "data" / "free-spoken-digit-dataset-1.0.10" / "recordings"
    assert len(data.load("test", 8000)[0]) == 2 * 10 * 5
    with pytest.raises(FileNotFoundError, match="download is false"):
        FSDD(tmp_path / "nowhere", download=False).prepare()
    with pytest.raises(DownloadError, match=r"A folder holding `recordings/` works as it is"):
        FSDD(tmp_path / "offline", url=f"{serve_dir(archive.parent)}/missing.tar.gz").prepare()


@needs_recipe("speech_commands")
def test_speech_commands_follows_the_official_lists(tmp_path):
    root = write_speech_commands(tmp_path / "speech_commands_v0.02", WORDS)
    data = SpeechCommands(tmp_path, task=35, download=False, expected_recordings=0)
    data.prepare()  # finds the extracted folder; downloads nothing
    assert data.classes == WORDS
    for split, takes in (("train", 2), ("val", 1), ("test", 1)):
        clips, labels, names = data.load(split, 16000)
        assert torch.equal(labels.bincount(minlength=35), torch.full((35,), takes)), split
    assert all(len(c) == 4000 for c in clips)
    assert set(names) == set((root / "testing_list.txt").read_text().split())
    assert (root / "validation_list.txt").read_text().count("\n") == 35


@needs_recipe("speech_commands")
def test_speech_commands_twelve_classes_add_unknown_and_silence(tmp_path):
    write_speech_commands(tmp_path / "speech_commands_v0.02", WORDS)
    data = SpeechCommands(tmp_path, task=12, download=False, expected_recordings=0)
    assert data.classes == (*COMMANDS, UNKNOWN, SILENCE)
    clips, labels, names = data.load("train", 8000)
    counts = labels.bincount(minlength=12)
    assert torch.equal(counts, torch.full((12,), 2)), "unknown and silence are as common as an average command"
    silence = [c for c, label in zip(clips, labels.tolist(), strict=True) if label == 11]
    assert all(len(c) == 8000 for c in silence), "silence is one second of background noise at the data's rate"
    assert names[-1].startswith("_background_noise_/") and names[-1].endswith("s")
    again = data.load("train", 8000).inputs
    assert all(torch.equal(a, b) for a, b in zip(clips, again, strict=True)), "seeded: the same cuts every load"


def test_wav_folder_splits_every_class(tmp_path):
    root = write_wav_folder(tmp_path / "sounds", per_class=10)
    data = WavFolder(root, val_fraction=0.2, test_fraction=0.2)
    assert data.classes == ("chirp", "noise", "tone")
    sizes = {split: data.load(split, 8000)[1].bincount().tolist() for split in ("train", "val", "test")}
    assert sizes == {"train": [6, 6, 6], "val": [2, 2, 2], "test": [2, 2, 2]}
    with pytest.raises(ValueError, match="holds 1 class folders"):
        WavFolder(write_wav_folder(tmp_path / "one", classes=("tone",), per_class=3))


def test_datamodule_batches_variable_lengths_and_augments_only_in_training(tmp_path):
    root = write_wav_folder(tmp_path / "sounds", per_class=10)
    dm = AudioDataModule(WavFolder(root), sample_rate=8000, batch_size=8, max_shift=0.05)
    assert dm.num_classes == 3 and dm.classes == ("chirp", "noise", "tone")
    dm.setup("fit")
    (waves, lengths), labels = next(iter(dm.val_dataloader()))
    assert waves.dtype == torch.float16 and waves.shape[1] == lengths.max()
    (evals, eval_lengths), _ = dm.on_after_batch_transfer(((waves, lengths), labels), 0)
    assert evals.dtype == torch.float32 and torch.equal(eval_lengths, lengths)
    fixed = AudioDataModule(WavFolder(root), sample_rate=8000, batch_size=8, clip_seconds=0.3)
    fixed.setup("fit")
    (waves, lengths), _ = next(iter(fixed.train_dataloader()))
    assert waves.shape == (8, 2400) and lengths.max() <= 2400


def test_datamodule_rejects_a_batch_that_does_not_split_over_devices(tmp_path):
    class TwoDevices:
        world_size = 2
        lightning_module = None

    dm = AudioDataModule(WavFolder(write_wav_folder(tmp_path / "s", per_class=4)), batch_size=5)
    dm.trainer = TwoDevices()
    with pytest.raises(ValueError, match="does not divide evenly over 2 devices"):
        dm.setup("fit")


@pytest.mark.slow  # unpacks 3,000 recordings
@needs_recipe("fsdd")
def test_real_fsdd_loads_in_the_usual_split(tmp_path):
    with tarfile.open(real_data_file("fsdd.tar.xz")) as tar:
        tar.extractall(tmp_path, filter="data")
    data = FSDD(tmp_path, download=False)
    sizes = {split: len(files) for split, files in data._split_files().items()}
    assert sizes == {"train": 2430, "val": 270, "test": 300}
    clips, labels, _ = data.load("test", 8000)
    assert labels.bincount().tolist() == [30] * 10
    seconds = torch.tensor([len(c) for c in clips]) / 8000
    assert seconds.min() > 0.1 and seconds.max() < 3, "FSDD's recordings last 0.14-2.3 s"
    assert all(c.abs().max() > 0.01 for c in clips), "every recording holds sound"


def test_on_device_serves_padded_clips_with_their_lengths(tmp_path):
    root = write_wav_folder(tmp_path / "sounds", per_class=10)
    host = AudioDataModule(WavFolder(root), sample_rate=8000, batch_size=8)
    device = AudioDataModule(WavFolder(root), sample_rate=8000, batch_size=8, on_device=True)
    for data in (host, device):
        data.setup("fit")
    loader = device.val_dataloader()
    assert isinstance(loader, DeviceLoader) and len(loader) == len(host.val_dataloader())
    (waves, lengths), labels = next(iter(loader))
    (host_waves, host_lengths), host_labels = next(iter(host.val_dataloader()))
    assert torch.equal(lengths, host_lengths) and torch.equal(labels, host_labels)
    assert torch.equal(waves[:, : host_waves.shape[1]], host_waves), "the same clips, padded to the split's longest"
    assert waves.shape[1] == max(len(clip) for clip in device.val_set.clips)
