"""The audio model: log-mel front end, length-aware RNN, and a tiny fit through the CLI on generated WAVs."""

import math
from pathlib import Path

import pytest
import soundfile
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from project.engine.cli import main
from project.engine.data.audio import pad_clips, resample
from project.engine.recipes import shipped
from project.models import RNNClassifier
from project.models.logmel import LogMel, SpecAugment, dct_matrix
from project.models.rnn import reverse_padded
from project.tasks.classification import metrics
from tests.conftest import cpu_trainer_args
from tests.recipes import needs_recipe
from tests.wav_format import write_fsdd, write_wav, write_wav_folder

RECIPES = shipped()


def _tiny_net(num_classes: int = 7, **kwargs) -> RNNClassifier:
    return RNNClassifier(num_classes, sample_rate=8000, n_mels=16, hidden_size=12, **kwargs)


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "gru", "readout": "attention"},
        {"cell": "lstm", "readout": "mean", "num_layers": 3, "normalize": "band"},
        {"cell": "gru", "bidirectional": False, "num_layers": 1},
        {"cell": "gru", "n_ceps": 8, "normalize": "band", "top_db": 40.0},
    ],
)
def test_padding_never_changes_a_prediction(options):
    net = _tiny_net(**options).eval()
    clips = [torch.randn(n) for n in (200, 1500, 4000, 81)]
    waves, lengths = pad_clips(clips)
    extra = torch.cat([waves, torch.randn(4, 500)], dim=1)  # garbage past every clip's end
    with torch.no_grad():
        batched = net(waves, lengths)
        noisy_padding = net(extra, lengths)
        alone = torch.cat([net(c[None], torch.tensor([len(c)])) for c in clips])
    assert batched.shape == (4, 7)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(noisy_padding, alone, atol=1e-5, rtol=1e-4)


def test_every_parameter_gets_a_gradient_with_an_odd_class_count():
    net = _tiny_net(7).train()
    waves, lengths = pad_clips([torch.randn(n) for n in (900, 2000, 1200)])
    logits = net(waves, lengths)
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without a gradient: {missing}"


def test_log_mel_puts_a_tone_in_its_band_and_counts_frames():
    front = LogMel(sample_rate=8000, n_mels=32, window_ms=32, hop_ms=10)
    t = torch.arange(8000) / 8000
    low, high = (torch.sin(2 * math.pi * f * t)[None] for f in (300.0, 2500.0))
    lengths = torch.tensor([8000])
    (low_mel, frames), (high_mel, _) = front(low, lengths), front(high, lengths)
    assert low_mel.shape == (1, 8000 // 80 + 1, 32) and frames.tolist() == [101]
    assert low_mel[0, 50].argmax() < high_mel[0, 50].argmax(), "a higher tone lands in a higher mel band"
    assert torch.isfinite(front(torch.zeros(1, 800), torch.tensor([800]))[0]).all(), "silence stays finite"


def test_a_floor_relative_to_the_peak_makes_the_features_independent_of_the_recording_level():
    front = LogMel(sample_rate=8000, n_mels=32, window_ms=32, hop_ms=10, top_db=40.0)
    clip, lengths = torch.randn(1, 4000), torch.tensor([4000])
    loud, quiet = front(clip, lengths)[0], front(clip * 0.01, lengths)[0]  # 40 dB quieter
    shift = loud - quiet
    torch.testing.assert_close(shift, torch.full_like(shift, math.log(1e4)))  # a constant, which normalising removes


def test_spec_augment_masks_only_in_training():
    augment = SpecAugment(freq_masks=2, freq_mask_width=4, time_masks=2, time_mask_fraction=0.2)
    x = torch.ones(8, 50, 20)
    frames = torch.full((8,), 50)
    assert torch.equal(augment.eval()(x, frames), x)
    masked = augment.train()(x, frames)
    assert (masked == 0).any() and (masked == 1).float().mean() > 0.4


def test_cepstra_keep_the_envelope_and_drop_the_pitch_ripple():
    dct = dct_matrix(40, 12)
    bands = torch.arange(40.0)
    envelope = -(((bands - 12) / 8) ** 2)  # one formant-like bump
    ripple = 0.5 * torch.cos(math.pi * bands * 0.9)  # band-to-band ripple, as resolved harmonics make
    kept = (envelope + ripple) @ dct @ dct.T  # back to bands from the first 12 coefficients
    assert (kept - envelope).abs().max() < 0.35 and (kept - envelope).abs().mean() < 0.1


def test_reverse_padded_reverses_within_each_length():
    x = torch.arange(8.0).view(2, 4, 1)
    out = reverse_padded(x, torch.tensor([3, 4]))
    assert out.squeeze(-1).tolist() == [[2, 1, 0, 3], [7, 6, 5, 4]]


def tiny_fsdd_args(root: Path, log_dir: Path, epochs: int) -> list[str]:
    """The fsdd recipe shrunk to seconds on a CPU: a small net and batch, no augmentation (a few dozen steps are
    too few to learn through it; the augmentations have tests of their own)."""
    return [
        "--config", str(RECIPES["fsdd"]),
        f"--data.source.init_args.root={root}",
        "--data.source.init_args.download=false",
        "--data.source.init_args.expected_recordings=0",  # a handful of generated recordings
        "--data.source.init_args.val_fraction=0.2",
        "--data.batch_size=16",
        "--data.speed=0", "--data.max_shift=0", "--data.gain_db=0",
        "--model.net.init_args.hidden_size=32",
        "--model.net.init_args.n_mels=24",
        "--model.net.init_args.dropout=0",
        "--model.net.init_args.freq_masks=0",
        "--model.net.init_args.time_masks=0",
        "--model.optimizer.init_args.lr=0.02",
        "--model.scheduler.init_args.max_lr=0.02",
        *cpu_trainer_args(log_dir, epochs),
    ]  # fmt: skip


# The audio example learning end to end (8 epochs); tests/test_recipes.py trains its recipe for a few steps quickly
@pytest.mark.slow
@needs_recipe("fsdd")
def test_fsdd_config_fits_generated_wavs_through_the_cli(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", speakers=("george", "theo"), takes=10)
    cli = main(["fit", *tiny_fsdd_args(root, tmp_path / "logs", epochs=8)])
    assert cli.model.net.head[-1].out_features == 10
    run = next((tmp_path / "logs" / "fsdd").glob("version_*"))
    events = EventAccumulator(str(run / "fit"), size_guidance={"images": 0})
    events.Reload()
    val_acc = [e.value for e in events.Scalars(metrics.VAL_ACC)]
    assert max(val_acc) >= 0.6, f"10 synthetic classes, chance is 0.1; validation accuracy went {val_acc}"
    tags = events.Tags()
    assert any(tag.startswith(metrics.VAL_SPECTROGRAM) for tag in tags["images"]), "no spectrograms in TensorBoard"
    assert any(tag.startswith(metrics.VAL_AUDIO) for tag in tags["tensors"]), "no audio clips in TensorBoard"
    assert metrics.VAL_PR_CURVES in tags["images"], "a PR curve per digit, in one picture"

    # The checkpoint alone predicts from raw waveforms
    tested = main([
        "test", *tiny_fsdd_args(root, tmp_path / "test_logs", epochs=8),
        f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
    ])  # fmt: skip
    assert tested.trainer.callback_metrics[metrics.TEST_ACC] >= 0.6
    predicted = main([
        "predict", *tiny_fsdd_args(root, tmp_path / "predict_logs", epochs=8),
        f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"--predictions.output={tmp_path / 'p.csv'}",
    ])  # fmt: skip
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert len(rows) == 1 + 100 and rows[1].startswith("recordings/0_george_0.wav,"), rows[:2]
    assert sum(key.startswith("p_") for key in predicted.trainer.predict_loop.predictions[0]) == 10

    # A folder of the user's own recordings, nested, at another rate: named by their paths
    mine = tmp_path / "mine"
    (mine / "day2").mkdir(parents=True)
    for source, target in [("1_theo_0.wav", "a.wav"), ("7_george_3.wav", "day2/b.wav")]:
        clip, rate = soundfile.read(root / "recordings" / source)
        write_wav(mine / target, resample(torch.from_numpy(clip).float(), rate, 16000).numpy(), 16000)
    main([
        "predict", *tiny_fsdd_args(root, tmp_path / "predict_logs", epochs=8), f"--data.predict_dir={mine}",
        f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"--predictions.output={tmp_path / 'mine.csv'}",
    ])  # fmt: skip
    rows = (tmp_path / "mine.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["a.wav", "day2/b.wav"]


@needs_recipe("fsdd")
def test_the_data_hands_its_sample_rate_to_the_front_end(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", takes=6)
    args = tiny_fsdd_args(root, tmp_path / "logs", epochs=1)
    assert main([*args, "--data.sample_rate=16000"], run=False).model.net.sample_rate == 16000
    with pytest.raises(ValueError, match=r"model\.net\.init_args\.sample_rate=8000 contradicts the data .*=16000"):
        main([*args, "--data.sample_rate=16000", "--model.net.init_args.sample_rate=8000"], run=False)


@pytest.mark.parametrize(
    ("configs", "num_classes"),
    [(["fsdd"], 10), (["fsdd_speaker"], 10), (["speech_commands"], 35)],
)
def test_audio_configs_build_their_model_and_data(configs, num_classes, tmp_path):
    missing = [config for config in configs if config not in RECIPES]
    if missing:
        pytest.skip(f"the recipe {missing[0]} is not here (removed with the examples)")
    given = [arg for config in configs for arg in ("--config", str(RECIPES[config]))]
    cli = main([*given, f"--trainer.logger.init_args.save_dir={tmp_path}"], run=False)
    assert isinstance(cli.model.net, RNNClassifier)
    assert cli.model.hparams.num_classes == num_classes == cli.datamodule.num_classes
    assert cli.model.net.sample_rate == cli.datamodule.sample_rate
    assert cli.trainer.logger.name == configs[-1]
    if "fsdd_speaker" in configs:  # the overlay changes only what an unseen voice needs
        assert cli.datamodule.source.split == "speaker" and cli.model.net.dct.shape == (40, 20)
        assert cli.trainer.max_epochs == 40 and cli.datamodule.batch_size == 128, "the rest comes from fsdd.yaml"
    callbacks = [type(c).__name__ for c in cli.trainer.callbacks]
    assert callbacks.count("LogSpectrograms") == 1 and callbacks.count("LearningRateMonitor") == 1, callbacks


@needs_recipe("fsdd")
def test_own_recordings_swap_in_from_the_command_line(tmp_path):
    """The documented path for a user's own data (docs/audio.md): keep the FSDD recipe, point it at a WAV folder."""
    root = write_wav_folder(tmp_path / "sounds", per_class=4)
    args = [
        "--config",
        str(RECIPES["fsdd"]),
        "--data.source=project.engine.data.WavFolder",
        f"--data.source.root={root}",
    ]
    cli = main([*args, f"--trainer.logger.init_args.save_dir={tmp_path}"], run=False)
    assert cli.datamodule.classes == ("chirp", "noise", "tone")
    assert cli.model.net.head[-1].out_features == 3
