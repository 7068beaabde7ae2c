"""FSDD's recipes: the shipped recipe learns generated recordings through the CLI, builds its model and data,
and takes a user's own WAV folder from the command line."""

import pytest
import soundfile
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from project.engine.cli import main
from project.engine.data.audio import resample
from project.examples.fsdd.tests.conftest import RECIPES, tiny_fsdd_args
from project.examples.fsdd.tests.fsdd_format import write_fsdd
from project.models import RNNClassifier
from project.tasks.classification import metrics
from tests.test_cli import _resolved
from tests.wav_format import write_wav, write_wav_folder


# The audio example learning end to end (8 epochs); tests/test_recipes.py trains its recipe for a few steps quickly
@pytest.mark.slow
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


def test_the_data_hands_its_sample_rate_to_the_front_end(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", takes=6)
    args = tiny_fsdd_args(root, tmp_path / "logs", epochs=1)
    assert main([*args, "--data.sample_rate=16000"], run=False).model.net.sample_rate == 16000
    with pytest.raises(ValueError, match=r"model\.net\.init_args\.sample_rate=8000 contradicts the data .*=16000"):
        main([*args, "--data.sample_rate=16000", "--model.net.init_args.sample_rate=8000"], run=False)


@pytest.mark.parametrize(
    ("configs", "num_classes"),
    [(["fsdd"], 10), (["fsdd_speaker"], 10)],
)
def test_audio_configs_build_their_model_and_data(configs, num_classes, tmp_path):
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


def test_the_fsdd_recipe_is_named_without_its_path_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _resolved(["--config", "fsdd"], capsys)["trainer"]["logger"]["init_args"]["name"] == "fsdd"
    assert _resolved(["--config", str(RECIPES["fsdd"])], capsys)["data"]["class_path"]
