"""Configs picked up without being asked for (a run folder's config.yaml, a checkpoint's stored config) name code
only where a key builds that kind of component, as a class defined in a trusted package, and no free function
but the net builders (project/engine/trust.py). The hostile names are those an attack pass tried, and others like
them: each is refused wherever it is put."""

import pytest

from project import settings
from project.engine.trust import PROJECT_PACKAGE, TRUSTED_PACKAGES, UntrustedConfigError, check_trusted

# Names inside the trusted packages that run commands, spawn processes, open sockets, load pickles or compile
# code; none is a component of the kind any key builds
HOSTILE = [
    "torch.utils.collect_env.run",
    "torch.multiprocessing.spawn",
    "torch.multiprocessing.start_processes",
    "torch.distributed.TCPStore",
    "torch.distributed.launcher.api.elastic_launch",
    "torch.distributed.run.main",
    "torch.distributed.rpc.rpc_sync",
    "torch.distributed.elastic.multiprocessing.start_processes",
    "torch.distributed.elastic.multiprocessing.subprocess_handler.SubprocessHandler",
    "torch._inductor.codecache.PyCodeCache.load",
    "torch.testing._internal.common_utils.shell",
    "torch.compile",
    "torch.export.load",
    "torch.fx.symbolic_trace",
    "torch.utils.benchmark.Timer",
    "torch.ops.load_library",
    "torch.library.Library",
    "torch.save",
    "torch.load",
    "torch.hub.load",
    "torch.utils.cpp_extension.load_inline",
    "torch.serialization.pickle.loads",
    "torch.os.system",
    "torch.sys.modules",
    "torch.__builtins__",
    "torch.nn.Module.__init__.__globals__",
    "torch.utils.tensorboard.SummaryWriter",
    "torchvision.datasets.utils.download_url",
    "torchvision.datasets.utils.os.system",
    "torchvision.io.write_file",
    "torchvision.models.get_model",
    "lightning.pytorch.cli.LightningCLI",
    "lightning.pytorch.cli.os.popen",
    "lightning.fabric.utilities.cloud_io._load",
    "lightning.fabric.utilities.cloud_io.get_filesystem",
    "lightning.pytorch.trainer.trainer.Trainer",
    f"{PROJECT_PACKAGE}.engine.data.download.download_archive",
    f"{PROJECT_PACKAGE}.cli.entry",
    "os.system",
    "subprocess.run",
    "builtins.exec",
    "importlib.import_module",
    "shutil.rmtree",
    "tests.recipes.TinyNet",  # not a trusted package
]


def _hook(value):
    callback = {"class_path": "lightning.pytorch.callbacks.LambdaCallback", "init_args": {"on_test_start": value}}
    return {"trainer": {"callbacks": [callback]}}


# Where a name may be put: a callback's hook (builds nothing), the same as `{class_path: ...}` (the issue's
# elastic_launch), a callback, a net, a layer inside a net, a logger, a source, the model, an optimizer
PLACES = {
    "hook": (_hook, r"trainer\.callbacks\[0\]\.init_args\.on_test_start"),
    "hook class_path": (lambda n: _hook({"class_path": n}), r"trainer\.callbacks\[0\]\.init_args\.on_test_start"),
    "callback": (lambda n: {"trainer": {"callbacks": [{"class_path": n}]}}, r"trainer\.callbacks\[0\]\.class_path"),
    "net": (lambda n: {"model": {"net": {"class_path": n}}}, r"model\.net\.class_path"),
    "layer": (
        lambda n: {"model": {"net": {"class_path": "torchvision.models.resnet18", "init_args": {"norm_layer": n}}}},
        r"model\.net\.init_args\.norm_layer",
    ),
    "logger": (lambda n: {"trainer": {"logger": {"class_path": n}}}, r"trainer\.logger\.class_path"),
    "source": (
        lambda n: {
            "data": {"class_path": f"{PROJECT_PACKAGE}.engine.data.InMemoryDataModule", "init_args": {"source": n}}
        },
        r"data\.init_args\.source",
    ),
    "model": (lambda n: {"model": {"class_path": n}}, r"model\.class_path"),
    "optimizer": (lambda n: {"model": {"optimizer": {"class_path": n}}}, r"model\.optimizer\.class_path"),
}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_is_refused_wherever_it_is_put(name, place):
    config, key = PLACES[place]
    with pytest.raises(UntrustedConfigError) as refused:
        check_trusted(config(name), "rf/config.yaml")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("Refusing ") and "rf/config.yaml" in message and "--config" in message
    assert __import__("re").search(rf"^Refusing {key}\S*: ", message), message
    assert name in message, message


ACCEPTED = [  # (what, config): each names only what its key builds
    ("an nn.Module net", {"model": {"net": {"class_path": f"{PROJECT_PACKAGE}.models.MLP"}}}),
    ("a torch layer as the net", {"model": {"net": {"class_path": "torch.nn.Linear"}}}),
    ("a torchvision builder", {"model": {"net": {"class_path": "torchvision.models.resnet18"}}}),
    (
        "a layer class inside a net",
        {
            "model": {
                "net": {"class_path": "torchvision.models.resnet18", "init_args": {"norm_layer": "torch.nn.Identity"}}
            }
        },
    ),
    ("an optimizer", {"model": {"optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}}}),
    ("a one-cycle schedule", {"model": {"scheduler": {"class_path": "torch.optim.lr_scheduler.OneCycleLR"}}}),
    ("ReduceLROnPlateau", {"model": {"scheduler": {"class_path": "torch.optim.lr_scheduler.ReduceLROnPlateau"}}}),
    ("Lightning's own optimizer key", {"optimizer": {"class_path": "torch.optim.AdamW"}}),
    ("a LightningModule", {"model": {"class_path": f"{PROJECT_PACKAGE}.tasks.classification.Classifier"}}),
    (
        "a data module and its source",
        {
            "data": {
                "class_path": f"{PROJECT_PACKAGE}.engine.data.InMemoryDataModule",
                "init_args": {"source": {"class_path": f"{PROJECT_PACKAGE}.engine.data.FeatureFiles"}},
            }
        },
    ),
    (
        "a view",
        {"trainer": {"callbacks": [{"class_path": f"{PROJECT_PACKAGE}.tasks.classification.ConfusionMatrixImage"}]}},
    ),
    (
        "a LambdaCallback without hooks",
        {"trainer": {"callbacks": [{"class_path": "lightning.pytorch.callbacks.LambdaCallback"}]}},
    ),
    ("a logger", {"trainer": {"logger": {"class_path": "lightning.pytorch.loggers.CSVLogger"}}}),
    ("a strategy by name", {"trainer": {"strategy": "ddp", "accelerator": "cpu", "plugins": ["bf16-mixed"]}}),
    ("a profiler", {"trainer": {"profiler": {"class_path": "lightning.pytorch.profilers.SimpleProfiler"}}}),
    (
        "a cluster plugin",
        {"trainer": {"plugins": [{"class_path": "lightning.pytorch.plugins.environments.SLURMEnvironment"}]}},
    ),
    ("checkpoint settings", {"checkpoint": {"monitor": "val/acc", "filename": "best-{epoch}"}}),
    ("a run named like a module", {"trainer": {"logger": {"init_args": {"name": "torch.v2", "version": "mnist.v2"}}}}),
]


@pytest.mark.parametrize("config", [c for _, c in ACCEPTED], ids=[w for w, _ in ACCEPTED])
def test_what_a_key_builds_is_accepted(config):
    check_trusted(config, "rf/config.yaml")


def _resnet18(**init_args):
    return {"model": {"net": {"class_path": "torchvision.models.resnet18", "init_args": init_args}}}


def _callback(class_path: str, **init_args):
    return {"trainer": {"callbacks": [{"class_path": class_path, "init_args": init_args}]}}


CLASSIFIER = f"{PROJECT_PACKAGE}.tasks.classification.Classifier"
WRONG_KIND = [  # a trusted class of another kind than its key builds, and free functions
    ("an optimizer as a callback", "trainer.callbacks[0].class_path", _callback("torch.optim.SGD")),
    ("a logger as the net", "model.net", {"model": {"net": "lightning.pytorch.loggers.CSVLogger"}}),
    ("a function as a layer", "model.net.init_args.norm_layer", _resnet18(norm_layer="torch.nn.functional.relu")),
    ("a net as the model", "model.class_path", {"model": {"class_path": "torch.nn.Linear"}}),
    (
        "a source as the data module",
        "data.class_path",
        {"data": {"class_path": f"{PROJECT_PACKAGE}.engine.data.Source"}},
    ),
    (
        "a class where the model builds nothing",
        "model.init_args.label_smoothing",
        {"model": {"class_path": CLASSIFIER, "init_args": {"label_smoothing": "torch.nn.Linear"}}},
    ),
    (
        "a layer inside an optimizer",
        "model.optimizer.init_args.params",
        {"model": {"optimizer": {"class_path": "torch.optim.SGD", "init_args": {"params": "torch.nn.Linear"}}}},
    ),
    (
        "a callback's argument given a class_path",
        "trainer.callbacks[0].init_args.monitor.class_path",
        _callback("lightning.pytorch.callbacks.EarlyStopping", monitor={"class_path": "torch.nn.Linear"}),
    ),
    ("a net builder reading a file", "model.net.init_args.checkpoint_path", _resnet18(checkpoint_path="/tmp/x.pth")),
    ("a class path by its short name", "model.net.class_path", {"model": {"net": {"class_path": "MLP"}}}),
    ("a class path that names nothing", "model.net.class_path", {"model": {"net": {"class_path": "torch.nothing"}}}),
]


@pytest.mark.parametrize("key, config", [(k, c) for _, k, c in WRONG_KIND], ids=[w for w, _, _ in WRONG_KIND])
def test_a_component_of_another_kind_or_a_free_function_is_refused(key, config):
    with pytest.raises(UntrustedConfigError, match=rf"^Refusing {__import__('re').escape(key)}: "):
        check_trusted(config, "rf/config.yaml")


def test_the_refusal_says_what_a_re_export_is():
    with pytest.raises(UntrustedConfigError, match=r"torch\.os\.system from rf/config\.yaml.*it is os's.*--config"):
        check_trusted({"on_test_start": "torch.os.system"}, "rf/config.yaml")


def test_the_project_trusts_itself_by_its_own_name():
    """A fork renamed from `project` keeps loading its own runs."""
    assert __import__("project").__name__ == PROJECT_PACKAGE and PROJECT_PACKAGE in TRUSTED_PACKAGES


def test_a_fork_trusts_timm_in_its_settings(monkeypatch):
    """timm.create_model is a net builder, but counts only once the fork trusts timm (project/settings.py)."""
    net = {"model": {"net": {"class_path": "timm.create_model", "init_args": {"model_name": "test_resnet"}}}}
    with pytest.raises(UntrustedConfigError, match=r"model\.net\.class_path: timm\.create_model .*trusted package"):
        check_trusted(net, "rf/config.yaml")
    monkeypatch.setattr(settings, "TRUSTED_PACKAGES", ("timm",))
    check_trusted(net, "rf/config.yaml")
    with pytest.raises(UntrustedConfigError, match=r"trainer\.callbacks\[0\]\.init_args\.on_test_start"):
        check_trusted(_hook("timm.create_model"), "rf/config.yaml")  # still only where a net goes


def test_a_fork_adds_a_net_builder_in_its_settings(monkeypatch):
    net = {"model": {"net": {"class_path": "torch.hub.list"}}}  # unsafe whatever the settings say
    monkeypatch.setattr(settings, "NET_BUILDERS", ("torch.hub.list",))
    with pytest.raises(UntrustedConfigError):
        check_trusted(net, "rf/config.yaml")
    builder = {"model": {"net": {"class_path": "torchvision.models.get_model"}}}  # not a registered builder
    with pytest.raises(UntrustedConfigError):
        check_trusted(builder, "rf/config.yaml")
    monkeypatch.setattr(settings, "NET_BUILDERS", ("torchvision.models.get_model",))
    check_trusted(builder, "rf/config.yaml")


def test_a_data_folder_on_the_path_is_not_code(tmp_path, monkeypatch):
    """A dotted value whose first part is a folder (a namespace package) is code only if the folder holds it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "evil.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    check_trusted({"trainer": {"logger": {"init_args": {"name": "data.v2"}}}}, "rf/config.yaml")
    with pytest.raises(UntrustedConfigError, match=r"trainer\.logger\.init_args\.name: data\.evil"):
        check_trusted({"trainer": {"logger": {"init_args": {"name": "data.evil"}}}}, "rf/config.yaml")


@pytest.mark.slow  # a fit, a test and a predict of a timm net
def test_a_timm_checkpoint_copied_away_tests_and_predicts_from_any_folder(tmp_path, monkeypatch):
    """Trained with `timm.create_model`, a checkpoint copied away from its run folder rebuilds its run from the
    config it carries, once the fork trusts timm (project/settings.py), from another working folder."""
    pytest.importorskip("timm")
    from project.engine.cli import main
    from tests.image_tree import write_image_tree
    from tests.recipes import image_folder_args

    write_image_tree(tmp_path / "images" / "train", per_class=6)
    write_image_tree(tmp_path / "images" / "test", per_class=2)
    args = image_folder_args(tmp_path / "images", tmp_path / "logs", epochs=1)
    timm_net = ["--model.net=timm.create_model", "--model.net.init_args.model_name=test_resnet"]
    main(["fit", *args, *timm_net])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copied = elsewhere / "model.ckpt"
    copied.write_bytes(next((tmp_path / "logs").rglob("last.ckpt")).read_bytes())
    monkeypatch.chdir(elsewhere)
    with pytest.raises(UntrustedConfigError, match=r"model\.init_args\.net\.class_path: timm\.create_model"):
        main(["test", f"--ckpt_path={copied}"])
    monkeypatch.setattr(settings, "TRUSTED_PACKAGES", ("timm",))
    tested = main(["test", f"--ckpt_path={copied}", "--trainer.enable_progress_bar=false"])
    assert "test/acc" in tested.trainer.callback_metrics
    main(["predict", f"--ckpt_path={copied}", f"--predictions.output={elsewhere / 'predictions.csv'}"])
    assert len((elsewhere / "predictions.csv").read_text().splitlines()) == 1 + 3 * 2
