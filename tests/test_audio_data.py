"""Audio loading: decoding, resampling, batching with true lengths, WAV folders' splits, errors."""

import math

import numpy as np
import pytest
import soundfile
import torch

from project.engine.data import AudioDataModule, WavFolder
from project.engine.data.audio import AudioClips, pad_clips, read_audio, resample
from project.engine.data.audio_transforms import WaveformTrainTransform, delayed, resample_at
from project.engine.data.loaders import DeviceLoader
from tests.wav_format import write_wav_folder


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


def test_wav_folder_splits_every_class(tmp_path):
    root = write_wav_folder(tmp_path / "sounds", per_class=10)
    data = WavFolder(root, val_fraction=0.2, test_fraction=0.2)
    assert data.classes == ("chirp", "noise", "tone")
    sizes = {split: data.load(split, 8000)[1].bincount().tolist() for split in ("train", "val", "test")}
    assert sizes == {"train": [6, 6, 6], "val": [2, 2, 2], "test": [2, 2, 2]}
    with pytest.raises(ValueError, match="holds 1 class folders"):
        WavFolder(write_wav_folder(tmp_path / "one", classes=("tone",), per_class=3))


def test_a_wav_folder_names_each_clip_by_its_path_and_keeps_the_splits_apart(tmp_path):
    root = write_wav_folder(tmp_path / "sounds", per_class=10)
    data = WavFolder(root, val_fraction=0.2, test_fraction=0.2, seed=3)
    splits = {split: data.load(split, 8000) for split in ("train", "val", "test")}
    names = {split: samples.names for split, samples in splits.items()}
    assert not set(names["train"]) & set(names["val"]) and not set(names["train"] + names["val"]) & set(names["test"])
    every = sorted(str(p.relative_to(root)) for p in root.rglob("*.wav"))
    assert sorted(n for split in names.values() for n in split) == every, "each file once, named by its path"
    for samples in splits.values():
        assert [data.classes[y] for y in samples.labels.tolist()] == [n.split("/")[0] for n in samples.names]
    assert names == {s: WavFolder(root, 0.2, 0.2, seed=3).load(s, 8000).names for s in names}, "seeded"
    assert names != {s: WavFolder(root, 0.2, 0.2, seed=4).load(s, 8000).names for s in names}, "by the seed"


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
