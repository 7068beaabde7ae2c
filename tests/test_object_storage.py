"""Chunks in S3-compatible object storage, against a local server (moto, started here on 127.0.0.1, plain http):
`python -m project.optimize` writes through LitData's writer into the bucket, never into a local look-alike
folder; a fit reads the chunks and `optimized.json` back through LitData's client with the endpoint passed as
`storage_options`, is stopped by SIGTERM and resumes exactly. Skipped, in one line, where no server can start."""

import json
import os
import signal
from pathlib import Path

import pytest

from project.engine.data import LitDataImages
from project.engine.errors import ConfigError, DataError
from tests.ddp import ddp_args, differences, fit, last_checkpoint, load, signal_at
from tests.extras import needs_extra
from tests.image_tree import write_image_tree
from tests.recipes import TINY

needs_extra("litdata")  # the `stream` extra
BUCKET = "bucket"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3():
    """The endpoint of an S3-compatible server on 127.0.0.1 holding an empty bucket `bucket`."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=BUCKET)
    except Exception as err:  # moto[server] missing, or no socket to bind
        pytest.skip(f"no local S3-compatible server could start ({type(err).__name__}: {err})")
    yield endpoint, client
    server.stop()


@pytest.fixture
def credentials(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def _keys(client, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def _upload(client, folder: Path, prefix: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder)}")


def test_project_json_and_the_index_are_read_through_the_storage_options(s3, credentials, tmp_path):
    """Chunks already in the bucket: the source reads `optimized.json` and every split's index.json from the
    endpoint named in storage_options (nothing in the environment), and checks them."""
    from tests.test_chunks import _pristine

    endpoint, client = s3
    _upload(client, _pristine(), "read/chunks")
    source = LitDataImages(f"s3://{BUCKET}/read/chunks", storage_options={"endpoint_url": endpoint})
    assert source.classes == ("circle", "square", "triangle") and source.image_size == 8
    assert source.served_split("train").storage_options == {"endpoint_url": endpoint}


def test_unreachable_or_missing_object_storage_is_one_line(s3, credentials):
    endpoint, _ = s3
    with pytest.raises(FileNotFoundError, match=r"s3://bucket/none/optimized\.json does not exist"):
        LitDataImages(f"s3://{BUCKET}/none", storage_options={"endpoint_url": endpoint})
    with pytest.raises(DataError, match=r"cannot read s3://bucket/x/optimized\.json: .*127\.0\.0\.1:9"):
        LitDataImages(f"s3://{BUCKET}/x", storage_options={"endpoint_url": "http://127.0.0.1:9"})
    with pytest.raises(ConfigError, match=r"az://bucket/x: LitData reads and writes chunks in s3://, gs://, r2://"):
        LitDataImages("az://bucket/x")


def _images(data: Path) -> list[str]:
    return [
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.ImageFolder",
        f"--data.source.init_args.root={data}",
        "--data.source.init_args.image_size=8",
        "--data.val_size=6",
    ]


def _fit_args(url: str, endpoint: str, cache: Path, log_dir: Path) -> list[str]:
    return [
        f"--config={TINY}",
        "--model.net=project.models.ResNet",
        "--model.net.init_args.channels_last=false",
        "--model.net.init_args.widths=[4,4,4,4]",
        "--data=project.engine.data.ImageDataModule",
        "--data.source=project.engine.data.LitDataImages",
        f"--data.source.init_args.input_dir={url}",
        f"--data.source.init_args.cache_dir={cache}",
        f"--data.source.init_args.storage_options={json.dumps({'endpoint_url': endpoint})}",
        "--data.batch_size=6",
        "--data.in_memory=false",
        "--data.num_workers=1",
        "--trainer.max_epochs=2",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        *ddp_args(1),
    ]


@pytest.mark.slow
def test_optimize_into_a_bucket_then_fit_stop_and_resume_exactly_from_it(
    s3, credentials, tmp_path, monkeypatch, capsys
):
    from project.engine.data.optimize import main as optimize

    endpoint, client = s3
    write_image_tree(tmp_path / "images", per_class=12, size=(10, 12))
    monkeypatch.chdir(tmp_path)  # where a local look-alike folder `s3:/bucket/...` would appear
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # the provider's environment, as docs/data.md shows
    url = f"s3://{BUCKET}/chunks/images"
    optimize([*_images(tmp_path / "images"), f"--output_dir={url}", "--num_workers=1"])
    assert f"Wrote 30 train, 6 val samples to {url}. Train from it with:" in capsys.readouterr().out
    keys = _keys(client, "chunks/images")
    assert "chunks/images/optimized.json" in keys and "chunks/images/train/index.json" in keys, keys
    assert any(k.startswith("chunks/images/train/chunk-") for k in keys), keys
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "s3").exists()

    # The fits name the endpoint in storage_options only: a client that ignored them could not reach it
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    env = {**CREDENTIALS}
    code, output = fit(_fit_args(url, endpoint, tmp_path / "cache_full", tmp_path / "full"), env=env)
    assert code == 0, output[-4000:]
    code, output = fit(
        [*_fit_args(url, endpoint, tmp_path / "cache_part", tmp_path / "part"), signal_at(signal.SIGTERM, 3)], env=env
    )
    assert code == 143, output[-4000:]
    last = last_checkpoint(tmp_path / "part")
    assert f"Interrupted (stopped by SIGTERM); saved {last}" in output and "Traceback" not in output, output
    assert load(last)["global_step"] == 4
    resumed = _fit_args(url, endpoint, tmp_path / "cache_resumed", tmp_path / "resumed")
    code, output = fit([*resumed, signal_at(signal.SIGTERM, 3), f"--ckpt_path={last}"], env=env)  # as it was made
    assert code == 0, output[-4000:]
    assert not differences(load(last_checkpoint(tmp_path / "full")), load(last_checkpoint(tmp_path / "resumed")))
    assert not os.environ.get("AWS_ENDPOINT_URL")
