"""The README's "Make it yours" example, run exactly as written: its code blocks become the files they
name, and the CLI trains them."""

import re
from pathlib import Path

import torch

import project.data
import project.models
from project.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_files() -> dict[str, str]:
    """Code blocks whose first line is `# <path>`, keyed by that path."""
    blocks = re.findall(r"```(?:python|yaml)\n# (\S+)\n(.*?)```", README.read_text(), flags=re.S)
    return {path: body for path, body in blocks}


def test_readme_example_trains(tmp_path, monkeypatch):
    files = readme_files()
    assert {"project/data/features.py", "project/models/mlp.py", "configs/features.yaml"} <= files.keys()
    # The example's modules live in a temporary folder that is made part of the installed packages
    for package, sub in ((project.data, "data"), (project.models, "models")):
        (tmp_path / sub).mkdir()
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path / sub)])
    (tmp_path / "data" / "features.py").write_text(files["project/data/features.py"])
    (tmp_path / "models" / "mlp.py").write_text(files["project/models/mlp.py"])
    config = tmp_path / "features.yaml"
    config.write_text(files["configs/features.yaml"])

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (600,), generator=generator)
    features = torch.randn(600, 16, generator=generator) + 2 * torch.nn.functional.one_hot(labels, 16)
    torch.save({"features": features, "labels": labels}, tmp_path / "features.pt")

    cli = main(
        [
            "fit",
            "--config",
            str(config),
            f"--data.path={tmp_path / 'features.pt'}",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
            "--trainer.max_epochs=5",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert cli.trainer.callback_metrics["val/acc"] > 0.8
    assert type(cli.model.net).__name__ == "MLP" and cli.model.net.layers[-1].out_features == 3
    assert (tmp_path / "logs" / "features" / "version_0" / "checkpoints" / "last.ckpt").is_file()
