"""Speech Commands' recipe builds its model and data."""

from project.engine.cli import main
from project.engine.recipes import shipped
from project.models import RNNClassifier


def test_the_recipe_builds_its_model_and_data(tmp_path):
    cli = main(
        ["--config", str(shipped()["speech_commands"]), f"--trainer.logger.init_args.save_dir={tmp_path}"], run=False
    )
    assert isinstance(cli.model.net, RNNClassifier)
    assert cli.model.hparams.num_classes == 35 == cli.datamodule.num_classes
    assert cli.model.net.sample_rate == cli.datamodule.sample_rate
    assert cli.trainer.logger.name == "speech_commands"
    callbacks = [type(c).__name__ for c in cli.trainer.callbacks]
    assert callbacks.count("LogSpectrograms") == 1 and callbacks.count("LearningRateMonitor") == 1, callbacks
