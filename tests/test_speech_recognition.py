"""The speech recognition task (project/tasks/speech_recognition) on tiny utterances the tests write: CTC learns,
padding changes no frame's logits, greedy decoding collapses repeats and blanks, the views draw, and the
vocabulary travels with the model."""

import json
import signal
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch

from project.engine.data import AudioDataModule
from project.engine.errors import ConfigError, DataError
from project.models import RNNFrameClassifier
from project.tasks.speech_recognition import (
    SpeechManifest,
    SpeechRecognizer,
    TranscribedSpectrograms,
    WorstUtterances,
    metrics,
)
from project.tasks.speech_recognition.decoding import edit_distance, greedy_decode
from project.tasks.speech_recognition.views import worst_table
from project.tasks.speech_recognition.vocabulary import BLANK, Vocabulary, normalize_text
from tests.speech_format import RATE, write_manifests


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> dict[str, Path]:
    return write_manifests(tmp_path_factory.mktemp("speech"))


def _net(vocabulary_size: int, **kwargs) -> RNNFrameClassifier:
    options = dict(n_mels=16, window_ms=32.0, hop_ms=16.0, hidden_size=48, num_layers=1, dropout=0.0)
    options.update(freq_masks=0, time_masks=0, **kwargs)
    return RNNFrameClassifier(vocabulary_size, sample_rate=RATE, **options)


def _data(manifests: dict[str, Path], **kwargs) -> AudioDataModule:
    source = SpeechManifest(manifests["train"], manifests["val"], manifests["test"])
    options = dict(sample_rate=RATE, batch_size=8, speed=0.0, max_shift=0.0, gain_db=0.0)
    return AudioDataModule(source, **{**options, **kwargs})


def _trainer(**kwargs) -> L.Trainer:
    options = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    options.update(num_sanity_val_steps=0, enable_model_summary=False)
    return L.Trainer(**{**options, **kwargs})


def test_decoding_collapses_repeats_then_drops_blanks_within_each_rows_frames():
    # Row 0: "a a - a b b -" -> a a b (a blank separates the two a's); row 1 ends after 3 frames
    paths = torch.tensor([[1, 1, 0, 1, 2, 2, 0], [2, 0, 2, 1, 1, 1, 1]])
    logits = torch.nn.functional.one_hot(paths, 3).float()
    assert greedy_decode(logits, torch.tensor([7, 3])) == [[1, 1, 2], [2, 2]]
    assert greedy_decode(logits[:, :0], torch.tensor([0, 0])) == [[], []]


def test_edit_distance_counts_substitutions_deletions_and_insertions():
    assert edit_distance(["one", "two"], ["one", "two"]) == 0
    assert edit_distance(["one", "three"], ["one", "two"]) == 1
    assert edit_distance([], ["one", "two"]) == 2
    assert edit_distance(["one", "one", "two", "six"], ["one", "two"]) == 2


def test_the_vocabulary_is_the_blank_then_the_characters_in_order():
    vocabulary = Vocabulary.of(["go up", "hi"])
    assert vocabulary.tokens == (BLANK, " ", "g", "h", "i", "o", "p", "u")
    assert vocabulary.decode(vocabulary.encode("hi go").tolist()) == "hi go"
    assert vocabulary.encode("up").min() >= 1  # never the blank
    assert vocabulary.unknown("hey you") == ["e", "y"]
    assert normalize_text("  Turn  the\tLIGHTS off ", lowercase=True) == "turn the lights off"
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary(("a", "b"))


def test_padding_changes_no_frames_logits():
    torch.manual_seed(0)
    net = _net(6, num_layers=2, bidirectional=True).eval()
    clips = [torch.randn(2000), torch.randn(3300), torch.randn(900)]
    lengths = torch.tensor([len(c) for c in clips])
    waves = torch.zeros(3, 4000)  # longer than any clip: every row padded
    for row, clip in enumerate(clips):
        waves[row, : len(clip)] = clip
    waves[0, len(clips[0]) :] = 5.0  # whatever lies past a clip's end must not matter
    logits, frames = net(waves, lengths)
    for row, clip in enumerate(clips):
        alone, alone_frames = net(clip[None], torch.tensor([len(clip)]))
        assert frames[row] == alone_frames[0] == alone.shape[1]
        assert torch.allclose(logits[row, : frames[row]], alone[0], atol=1e-5)


def test_ctc_learns_to_transcribe_tiny_utterances_in_a_few_steps(manifests):
    """Three words of distinct sounds, 48 utterances of one to three words: an untrained net hears nothing
    (WER 1.0); 60 steps bring the validation WER well below it."""
    L.seed_everything(0)
    data = _data(manifests)
    model = SpeechRecognizer(_net(len(data.source.classes)), optimizer=partial(torch.optim.Adam, lr=0.03))
    trainer = _trainer(max_steps=60, check_val_every_n_epoch=100)
    before = trainer.validate(model, data, verbose=False)[0][metrics.VAL_WER]
    trainer.fit(model, data)
    after = trainer.validate(model, data, verbose=False)[0]
    assert before >= 0.9 and after[metrics.VAL_WER] < 0.4 and after[metrics.VAL_CER] < 0.2, (before, after)
    assert model.hparams.vocabulary == list(data.source.classes)  # taken from the data, kept for the checkpoint
    predictions = trainer.predict(model, data)
    rows = [row for batch in predictions for row in zip(batch["hypothesis"], batch["reference"], strict=True)]
    assert len(rows) == 12 and sum(h == r for h, r in rows) >= 6


def test_utterances_too_short_for_their_transcripts_are_reported_once(manifests):
    data = _data(manifests)
    # A frame every 400 ms: a one-word utterance of about 0.3 s has a frame or two for its two or more letters
    model = SpeechRecognizer(_net(len(data.source.classes), window_ms=32.0, hop_ms=400.0))
    with pytest.warns(UserWarning) as caught:
        _trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=0).fit(model, data)
    told = [str(w.message) for w in caught if "fewer frames" in str(w.message)]
    assert len(told) == 1 and told[0].startswith("16 training utterances this epoch had fewer frames than"), told


def test_a_vocabulary_that_differs_from_the_datas_is_refused(manifests):
    data = _data(manifests)
    model = SpeechRecognizer(_net(5), vocabulary=[BLANK, " ", "a", "b", "c"])
    with pytest.raises(ConfigError, match=r"reads 5 tokens .* but the data writes its transcripts in 8"):
        _trainer(max_steps=1).fit(model, data)


def test_a_net_of_another_width_or_not_per_frame_is_refused(manifests):
    with pytest.raises(ConfigError, match="scores 5 tokens a frame but the vocabulary has 8"):
        _trainer(max_steps=1).fit(SpeechRecognizer(_net(5)), _data(manifests))

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(1, 8)

        def forward(self, waves, lengths):
            return self.linear(waves.mean(1, keepdim=True))  # (B, 8): one score row a clip

    with pytest.raises(ConfigError, match=r"returned logits of shape \(8, 8\); CTC needs one row of scores per frame"):
        _trainer(max_steps=1).fit(SpeechRecognizer(Pooled()), _data(manifests))


def test_class_index_targets_are_refused_as_not_transcripts(tmp_path):
    from project.engine.data import WavFolder
    from tests.wav_format import write_wav_folder

    data = AudioDataModule(WavFolder(write_wav_folder(tmp_path / "wavs")), sample_rate=RATE, batch_size=4)
    model = SpeechRecognizer(_net(3), vocabulary=[BLANK, "a", "b"])
    with pytest.raises(DataError, match=r"needs transcripts, but WavFolder gives classes \(chirp, noise, tone\)"):
        _trainer(max_steps=1).fit(model, data)
    with pytest.raises(DataError, match=r"needs transcripts as targets .* gives a tensor of shape \(4,\)"):
        model.training_step(((torch.zeros(4, 800), torch.full((4,), 800)), torch.zeros(4, dtype=torch.int64)), 0)


def test_the_views_draw_spectrograms_audio_and_the_worst_utterances(manifests, tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = _data(manifests)
    views = [TranscribedSpectrograms(count=2, min_interval=0), WorstUtterances(count=3, min_interval=0)]
    model = SpeechRecognizer(_net(len(data.source.classes)))
    logger = TensorBoardLogger(tmp_path, name="speech")
    trainer = _trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=logger, callbacks=views)
    trainer.fit(model, data)
    trainer.test(model, data, verbose=False)
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "audio": 0, "tensors": 0})
    events.Reload()
    images, tensors = events.Tags()["images"], events.Tags()["tensors"]
    assert {f"{metrics.VAL_SPECTROGRAM}0", f"{metrics.VAL_SPECTROGRAM}1"} <= set(images)
    assert {f"{metrics.VAL_AUDIO}0", f"{metrics.VAL_AUDIO}1"} <= set(tensors)
    table = events.Tensors(f"{metrics.TEST_WORST}/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert table.startswith("| utterance |") and table.count("\n") == 4 and "test/" in table
    names = [json.loads(line)["audio_filepath"] for line in manifests["test"].read_text().splitlines()]
    assert any(name in table for name in names)  # rows are named as the manifest names the clips


def test_the_worst_table_sorts_by_word_error_rate_and_escapes_bars():
    rows = sorted([(0.5, 1, 0, 2, "b.wav", "up go", "up"), (1.0, 1, -1, 1, "a|x.wav", "hi", "")], reverse=True)
    table = worst_table(rows).splitlines()
    assert table[2] == "| a\\|x.wav | 1.00 (1 / 1) | hi | (nothing) |" and table[3].startswith("| b.wav | 0.50 (1 / 2)")


def _manifest_fit_args(manifests: dict[str, Path], log_dir: Path) -> list[str]:
    """The shipped manifest recipe shrunk to seconds: 16 clips in batches of 4, 3 epochs; dropout, SpecAugment
    and speed perturbation stay on, so a resume must replay every random draw."""
    return [
        "--config=speech_manifest",
        *(f"--data.source.init_args.{split}={path}" for split, path in manifests.items()),
        "--data.sample_rate=8000",
        "--data.batch_size=4",
        "--model.init_args.net.init_args.n_mels=16",
        "--model.init_args.net.init_args.hidden_size=16",
        "--model.init_args.net.init_args.num_layers=2",
        "--trainer.max_epochs=3",
        "--trainer.accelerator=cpu",
        "--trainer.deterministic=true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.callbacks=[]",
        f"--trainer.logger.init_args.save_dir={log_dir}",
    ]


# Three fits each: slow (the machinery's resume is quick in tests/test_interrupts.py with the tiny table)
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctc_stopped_mid_step_resumes_bit_exactly(signum, tmp_path):
    """4 steps an epoch; the signal comes in the middle of the 6th step (the second epoch's second)."""
    from tests.test_interrupts import _assert_resumes_exactly

    manifests = write_manifests(tmp_path / "speech", train=16, val=4, test=4)
    _assert_resumes_exactly(partial(_manifest_fit_args, manifests), signum, 5, 4, tmp_path)


@pytest.mark.slow
def test_a_checkpoint_alone_tests_and_transcribes_new_recordings(tmp_path):
    """fit on manifests, then `test` and `predict` (the test split, then a folder of new clips) from the
    checkpoint alone: its vocabulary travels in it."""
    import csv

    from project.engine.cli import main

    manifests = write_manifests(tmp_path / "speech", train=16, val=4, test=4)
    fit = main(["fit", *_manifest_fit_args(manifests, tmp_path / "logs")])
    checkpoint = fit.trainer.checkpoint_callback.best_model_path
    assert torch.load(checkpoint, weights_only=True)["hyper_parameters"]["vocabulary"][0] == BLANK
    tested = main(["test", f"--ckpt_path={checkpoint}"])
    assert 0 <= tested.trainer.callback_metrics[metrics.TEST_WER] <= 2
    main(["predict", f"--ckpt_path={checkpoint}", f"--predictions.output={tmp_path / 'test.csv'}"])
    rows = list(csv.DictReader((tmp_path / "test.csv").read_text().splitlines()))
    assert len(rows) == 4 and set(rows[0]) == {"sample", "hypothesis", "reference"}
    assert rows[0]["sample"] == json.loads(manifests["test"].read_text().splitlines()[0])["audio_filepath"]
    new = tmp_path / "new"
    new.mkdir()
    for name in ("b.wav", "a.wav"):
        (new / name).write_bytes((manifests["test"].parent / "test" / "000.wav").read_bytes())
    main(
        [
            "predict",
            f"--ckpt_path={checkpoint}",
            f"--data.predict_dir={new}",
            f"--predictions.output={tmp_path / 'new.csv'}",
        ]
    )
    rows = list(csv.DictReader((tmp_path / "new.csv").read_text().splitlines()))
    assert [r["sample"] for r in rows] == ["a.wav", "b.wav"] and set(rows[0]) == {"sample", "hypothesis"}
    assert rows[0]["hypothesis"] == rows[1]["hypothesis"]  # the same clip, the same transcript


@pytest.mark.parametrize("view", ["TranscribedSpectrograms", "WorstUtterances"])
def test_a_speech_view_on_a_classifier_stops_the_fit_at_its_start_in_one_line(view, tmp_path):
    from project.engine.cli import main
    from tests.recipes import tiny_args

    args = [*tiny_args(tmp_path / "logs", epochs=1), f"--trainer.callbacks+=project.tasks.speech_recognition.{view}"]
    with pytest.raises(ConfigError, match=rf"^{view} reads hypotheses, references from the model's .* Classifier"):
        main(["fit", *args])
