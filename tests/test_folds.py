"""K-fold cross-validation: the folds of the shared data module (project/engine/data/folds.py) and the
command that runs them all (`python -m project.crossval`), on the tests' own tiny recipe."""

import json
import sys
import tarfile
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch

from project.engine.cli import main as cli_main
from project.engine.crossval.__main__ import main
from project.engine.data import AudioDataModule, InMemoryDataModule, Samples, Source, WavFolder
from project.engine.data.folds import assign_folds
from project.engine.errors import USER_ERROR_EXIT, DataError, run_command
from tests.conftest import real_data_file
from tests.recipes import TINY, TinyTable, needs_recipe, run_dir, tiny_args
from tests.shell import run_commands
from tests.wav_format import write_fsdd, write_wav_folder

try:  # our examples; gone in a fork that removed them (python -m project.fork remove-examples)
    from project.examples.fsdd import FSDD
    from project.examples.fsdd.source import SPEAKERS
    from project.examples.speech_commands import SpeechCommands
except ImportError:
    FSDD = SpeechCommands = SPEAKERS = None


class Speakers(Source):
    """Feature vectors of 2 classes from speakers of different sizes: speaker s has 4 + s samples."""

    classes = ("a", "b")
    group_keys = ("speaker",)

    def __init__(self, speakers: int = 5):
        self.speakers = speakers

    def load(self, split: str) -> Samples | None:
        if split != "train":
            return None
        names = [f"s{s}/{i}" for s in range(self.speakers) for i in range(4 + s)]
        labels = torch.tensor([i % 2 for s in range(self.speakers) for i in range(4 + s)])
        return Samples(torch.randn(len(names), 8), labels, names)

    def group(self, key: str, name: str) -> str:
        return name.split("/")[0]


def folds_of(make, num_folds: int) -> list[InMemoryDataModule]:
    return [make(fold) for fold in range(num_folds)]


def test_the_folds_partition_the_pool_exactly_and_each_run_uses_all_of_it():
    modules = folds_of(lambda f: InMemoryDataModule(TinyTable(), val_size=10, fold=f, num_folds=3), 3)
    pool = {f"{split}/{i}" for split in ("train", "test") for i in range(100)}  # every split the source has
    tests = [set(dm.fold_split()[1].names) for dm in modules]
    assert set().union(*tests) == pool and sum(map(len, tests)) == len(pool), "disjoint, and together the pool"
    for dm, test in zip(modules, tests, strict=True):
        train, val = dm.fit_splits()
        assert len(val.names) == 10
        parts = [set(train.names), set(val.names), test]
        assert set().union(*parts) == pool and sum(map(len, parts)) == len(pool)
    # Stratified: each class's share of every fold to within one sample, fold sizes to within one
    labels = [Counter(dm.fold_split()[1].labels.tolist()) for dm in modules]
    for c in range(3):
        counts = [count[c] for count in labels]
        assert max(counts) - min(counts) <= 1, counts
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1


def test_folds_are_fixed_by_the_seed_whatever_the_order_of_the_samples():
    generator = torch.Generator().manual_seed(1)
    keys = [f"clip{i:03d}" for i in range(90)]
    labels = torch.randint(0, 3, (90,), generator=generator)
    groups = [f"speaker{i % 7}" for i in range(90)]
    for by in (None, groups):
        folds = assign_folds(keys, labels, 4, seed=0, groups=by)
        assert torch.equal(folds, assign_folds(keys, labels, 4, seed=0, groups=by)), "stable across runs"
        order = torch.randperm(90, generator=generator)
        shuffled = assign_folds(
            [keys[i] for i in order], labels[order], 4, seed=0, groups=None if by is None else [by[i] for i in order]
        )
        assert torch.equal(shuffled, folds[order]), "independent of the order the source lists the samples in"
        assert not torch.equal(assign_folds(keys, labels, 4, seed=1, groups=by), folds), "another seed, other folds"


def test_grouped_folds_keep_every_group_whole_and_balance_the_folds():
    modules = folds_of(lambda f: InMemoryDataModule(Speakers(), fold=f, num_folds=2, fold_groups="speaker"), 2)
    speakers = [{name.split("/")[0] for name in dm.fold_split()[1].names} for dm in modules]
    assert not speakers[0] & speakers[1] and speakers[0] | speakers[1] == {f"s{s}" for s in range(5)}
    assert [sorted(s) for s in speakers] == [dm.held_out_groups for dm in modules]
    # Sizes 8, 7, 6, 5, 4: largest first to the emptier fold gives 8+5+4 against 7+6
    assert sorted(len(dm.fold_split()[1].names) for dm in modules) == [13, 17]

    # As many folds as groups: each fold holds out exactly one
    modules = folds_of(lambda f: InMemoryDataModule(Speakers(), fold=f, num_folds=5, fold_groups="speaker"), 5)
    held_out = [(dm.fold_split(), dm.held_out_groups)[1] for dm in modules]
    assert all(len(groups) == 1 for groups in held_out)
    assert sorted(g for groups in held_out for g in groups) == [f"s{s}" for s in range(5)]


@needs_recipe("fsdd")
def test_fsdd_folds_by_speaker_hold_out_one_speaker_each(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", speakers=("george", "theo", "lucas"), takes=2)
    held_out = []
    for fold in range(3):
        source = FSDD(root, split="speaker", download=False, expected_recordings=0)
        dm = AudioDataModule(source, sample_rate=8000, val_size=4, fold=fold, num_folds=3, fold_groups="speaker")
        test = dm.fold_split()[1]
        assert len(test.names) == 20, "all ten digits x two takes of the speaker, whatever `split` says"
        assert {Path(n).name.split("_")[1] for n in test.names} == set(dm.held_out_groups)
        held_out += dm.held_out_groups
    assert sorted(held_out) == ["george", "lucas", "theo"]


@needs_recipe("fsdd")
@pytest.mark.slow
def test_real_fsdd_in_six_folds_by_speaker_holds_out_each_speaker_once(tmp_path):
    with tarfile.open(real_data_file("fsdd.tar.xz")) as tar:
        tar.extractall(tmp_path, filter="data")
    source = FSDD(tmp_path, split="speaker", download=False)
    data = AudioDataModule(source, sample_rate=8000, fold=0, num_folds=6, fold_groups="speaker")
    rest, test = data.fold_split()
    assert len(data.held_out_groups) == 1 and test.labels.bincount().tolist() == [50] * 10, "one speaker, all 500"
    # The other folds, from the same names and groups (without decoding the recordings five more times)
    names, labels = rest.names + test.names, torch.cat([rest.labels, test.labels])
    groups = [source.group("speaker", name) for name in names]
    folds = assign_folds(names, labels, 6, seed=0, groups=groups).tolist()
    held_out = [sorted({g for g, f in zip(groups, folds, strict=True) if f == fold}) for fold in range(6)]
    assert held_out[0] == data.held_out_groups
    assert sorted(speakers[0] for speakers in held_out if len(speakers) == 1) == sorted(SPEAKERS)


@needs_recipe("speech_commands")
def test_speech_commands_and_wav_folders_tell_the_speaker(tmp_path):
    commands = SpeechCommands(tmp_path, download=False)
    assert commands.group("speaker", "yes/0a7c2a8d_nohash_1.wav") == "0a7c2a8d"
    assert commands.group("speaker", "_background_noise_/pink_noise.wav@1.250s") == "pink_noise.wav"

    root = write_wav_folder(tmp_path / "wavs", per_class=3)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*.wav"))
    folder = WavFolder(root, groups={"take": r"(\d+)\.wav$"})
    assert folder.group_keys == ("take",) and folder.group("take", names[0]) == Path(names[0]).stem
    with pytest.raises(DataError, match=r"groups.speaker: '\[x' is not a regular expression"):
        WavFolder(root, groups={"speaker": "[x"})
    with pytest.raises(DataError, match="finds no take in its path"):
        WavFolder(root, groups={"take": r"(\d+)_never"}).group("take", names[0])


def test_a_checkpoint_carries_its_fold_and_test_evaluates_that_fold(tmp_path):
    cli_main(["fit", *tiny_args(tmp_path, epochs=1), "--data.fold=2", "--data.num_folds=3"])
    run = run_dir(tmp_path)
    checkpoint = run / "checkpoints" / "last.ckpt"
    stored = torch.load(checkpoint, weights_only=True)["datamodule_hyper_parameters"]
    assert (stored["fold"], stored["num_folds"], stored["fold_groups"]) == (2, 3, None)
    tested = cli_main(["test", f"--config={run / 'config.yaml'}", f"--ckpt_path={checkpoint}"])
    expected = InMemoryDataModule(TinyTable(), val_size=20, fold=2, num_folds=3).fold_split()[1].names
    assert tested.datamodule.test_set.names == expected
    assert "test/acc" in tested.trainer.callback_metrics


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.fold=3", "--data.num_folds=3"], "data.fold must be between 0 and 2 (data.num_folds=3), got 3"),
        (["--data.fold=0", "--data.num_folds=1"], "data.num_folds must be at least 2, got 1"),
        (["--data.fold=1"], "data.fold=1 needs data.num_folds"),
        (["--data.num_folds=4"], "data.num_folds=4 needs data.fold, the fold to test on (0 to 3)"),
        (["--data.fold_groups=speaker"], "data.fold_groups='speaker' needs data.num_folds"),
        (
            ["--data.fold=0", "--data.num_folds=2", "--data.fold_groups=speaker"],
            "data.fold_groups='speaker': TinyTable cannot tell a sample's speaker (it tells none)",
        ),
        (["--data.fold=0", "--data.num_folds=80"], "data.num_folds=80 is more than the"),
    ],
)
def test_bad_fold_settings_are_refused_naming_the_key(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit:
        run_command(lambda: cli_main(["fit", *tiny_args(tmp_path, epochs=1), *args]))
    assert exit.value.code == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert f"\nerror: {message}" in f"\n{err}" and "Traceback" not in err, err


@pytest.mark.slow
def test_a_shell_sees_one_line_for_too_many_groups_and_no_traceback(tmp_path):
    speakers = f"{__name__}.Speakers"
    command = [sys.executable, "-m", "project.cli", "fit", *tiny_args(tmp_path, epochs=1)]
    command += [f"--data.source={speakers}", "--data.fold=0", "--data.num_folds=6", "--data.fold_groups=speaker"]
    (done,) = run_commands([command])
    assert done.returncode == USER_ERROR_EXIT, done.stderr[-2000:]
    assert "error: data.num_folds=6 is more than the 5 groups of the data (s0, s1, s2, s3, s4)" in done.stderr
    assert "Traceback" not in done.stderr


def study_command(tmp_path: Path, *extra: str, folds: int = 3) -> list[str]:
    """A study of the tiny recipe in `folds` folds, logging in `tmp_path`; `extra` go to every fold's fit."""
    return ["--config", str(TINY), "--num_folds", str(folds), "--", *tiny_args(tmp_path, epochs=2)[1:], *extra]


def check_summary(study: Path, folds: int = 3) -> None:
    """crossval.json and crossval.csv: every fold, every sample tested once, and the mean and spread."""
    summary = json.loads((study / "crossval.json").read_text())
    accuracies = [fold["test"]["test/acc"] for fold in summary["folds"]]
    assert [fold["fold"] for fold in summary["folds"]] == list(range(folds))
    assert sum(fold["test_samples"] for fold in summary["folds"]) == 200, "every sample tested once"
    assert summary["mean"]["test/acc"] == pytest.approx(sum(accuracies) / folds)
    assert summary["mean"]["test/acc"] > 0.6
    assert summary["std"]["test/acc"] == pytest.approx(torch.tensor(accuracies).std().item())
    rows = (study / "crossval.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["fold", "held out", "test samples"] and "test/acc" in rows[0]
    assert [row.split(",")[0] for row in rows[1:]] == [*map(str, range(folds)), "mean", "std", "min", "max"]


@pytest.mark.slow  # a whole study: the quick tests above check its folds, checkpoints and settings
def test_a_2_fold_study_runs_end_to_end_and_writes_the_mean_and_spread(tmp_path, capsys):
    command = study_command(tmp_path, folds=2)  # the fewest folds that have a spread
    main(command)
    out = capsys.readouterr().out
    study = tmp_path / "tiny_2folds"
    check_summary(study, folds=2)
    assert "test/acc: " in out and " ± " in out
    for fold in range(2):
        run = study / f"fold{fold}"
        assert (run / "config.yaml").is_file() and (run / "test" / "config.yaml").is_file(), "normal run folders"

    main(command)  # run again: nothing to do
    out = capsys.readouterr().out
    assert all(f"Fold {fold}: tested already" in out for fold in range(2))

    # Separate jobs: a command per fold, and a SLURM array
    main([*command[:4], "--print-commands", *command[4:]])
    printed = capsys.readouterr().out
    assert "--fold 1 -- " in printed and "#SBATCH --array=0-1" in printed and "--fold $SLURM_ARRAY_TASK_ID" in printed

    # Another number of folds in the same study's folder is refused: its folds would not be comparable
    with pytest.raises(SystemExit) as exit:
        main(["--config", str(TINY), "--num_folds", "3", "--study", "tiny_2folds", *command[4:]])
    assert exit.value.code == USER_ERROR_EXIT
    assert "was started with other settings (differences: num_folds" in capsys.readouterr().err


class InterruptOnce(L.Callback):
    """Acts as a Ctrl-C at the start of the second epoch of the run `version`, once: `marker` remembers."""

    def __init__(self, version: str, marker: str):
        self.version, self.marker = version, Path(marker)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1 and trainer.logger.version == self.version and not self.marker.exists():
            self.marker.touch()
            raise KeyboardInterrupt


@pytest.mark.slow  # a whole study, interrupted and resumed
def test_an_interrupted_study_resumes_with_no_fold_lost_or_run_twice(tmp_path, capsys):
    init_args = {"version": "fold1", "marker": str(tmp_path / "interrupted")}
    interrupt = json.dumps({"class_path": f"{__name__}.InterruptOnce", "init_args": init_args})
    command = study_command(tmp_path, f"--trainer.callbacks+={interrupt}")
    with pytest.raises(SystemExit) as exit:
        main(command)
    assert exit.value.code == 130
    assert "Run the same command to go on" in capsys.readouterr().err
    study = tmp_path / "tiny_3folds"
    first = {p: p.stat().st_mtime_ns for p in (study / "fold0").rglob("*")}
    assert json.loads((study / "fold0" / "crossval_fold.json").read_text())["test"]
    assert not (study / "fold1" / "crossval_fold.json").exists() and (study / "fold1/checkpoints/last.ckpt").exists()

    with pytest.raises(SystemExit) as exit:  # the summary of separate jobs, while some are missing
        main([*command[:4], "--collect", *command[4:]])
    assert exit.value.code == 1
    assert "Folds 1, 2 have no test result yet" in capsys.readouterr().out
    assert not (study / "crossval.csv").exists()

    main([*command[:4], "--fold", "2", *command[4:]])  # one fold, as one job of an array would
    assert "2 of 3 folds tested" in capsys.readouterr().out and not (study / "crossval.csv").exists()

    main(command)  # the same command goes on
    out = capsys.readouterr().out
    assert "Fold 0: tested already" in out and "Fold 2: tested already" in out
    assert "Fold 1: resuming its fit from" in out
    assert {p: p.stat().st_mtime_ns for p in (study / "fold0").rglob("*")} == first, "fold 0 was not run again"
    check_summary(study)
    main([*command[:4], "--collect", *command[4:]])
    assert "Written: " in capsys.readouterr().out
