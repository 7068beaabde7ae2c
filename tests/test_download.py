"""Downloads and extraction: all or nothing, a bad leftover archive replaced or refused with the fix,
and no archive writing outside its target (the CVE-2025-4517 symlink chain included)."""

import hashlib
import io
import logging
import os
import socket
import tarfile
from pathlib import Path

import pytest

from project.engine.data.download import DownloadError, RemoteArchive, download_and_extract, extract_archive
from tests.archive_format import add_to_tar
from tests.archived_wavs import ARCHIVE, FOLDER, ArchivedWavs, write_release


def write_cve_2025_4517_archive(archive: Path, victim: str) -> None:
    """The published CVE-2025-4517 proof of concept: symlinks through nested 247-character folder names
    make the path longer than PATH_MAX, where `os.path.realpath` (and so `filter="data"`) stops
    following links; a link then climbs out, and a hard link through it lets a file member overwrite
    `victim`, a file beside the extraction folder. On Python 3.11.7 `filter="data"` lets it through."""
    comp, steps, path = "d" * 247, "abcdefghijklmnop", ""

    def add(name: str, kind: bytes, linkname: str = "", data: bytes = b"") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, linkname, len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)

    with tarfile.open(archive, "w") as tar:
        for step in steps:
            add(os.path.join(path, comp), tarfile.DIRTYPE)
            add(os.path.join(path, step), tarfile.SYMTYPE, comp)
            path = os.path.join(path, comp)
        linkpath = os.path.join(*steps, "l" * 254)
        add(linkpath, tarfile.SYMTYPE, "../" * len(steps))  # back up to the extraction folder...
        add("escape", tarfile.SYMTYPE, linkpath + "/..")  # ...and one more: its parent
        add("flaglink", tarfile.LNKTYPE, f"escape/{victim}")
        add("flaglink", tarfile.REGTYPE, data=b"overwritten")


def _symlink_chain_archive(archive: Path) -> None:
    """Each link alone stays inside ("d/up" -> ".." is the folder itself) but "d/out" -> "up/.." leaves it."""
    with tarfile.open(archive, "w:gz") as tar:
        for name, kind, target in (
            ("d", tarfile.DIRTYPE, ""),
            ("d/up", tarfile.SYMTYPE, ".."),
            ("d/out", tarfile.SYMTYPE, "up/.."),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("build", [lambda a: write_cve_2025_4517_archive(a, "victim"), _symlink_chain_archive])
def test_symlink_chain_archives_cannot_write_outside(build, tmp_path):
    (tmp_path / "victim").write_text("original")
    archive = tmp_path / "archive.tar"
    build(archive)
    with pytest.raises(DownloadError, match=r"archive\.tar tries to write outside .*out"):
        extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "victim").read_text() == "original"
    assert _entries(tmp_path) == ["archive.tar", "victim"], "nothing may be written, not even a partial folder"


@pytest.mark.parametrize(
    "members",
    [
        # normpath reads "here/../x" as "x", but "here" -> "." turns its ".." into the target's parent
        [("here", tarfile.SYMTYPE, "."), ("here/../x", tarfile.REGTYPE, "")],
        # one folder deep in a model that took "\\" for "/", but a plain character on POSIX
        [("a\\up", tarfile.SYMTYPE, ".."), ("a\\up/x", tarfile.REGTYPE, "")],
    ],
)
def test_paths_a_lexical_check_misreads_are_refused(members, tmp_path):
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    with pytest.raises(DownloadError, match="tries to write outside"):
        extract_archive(tmp_path / "a.tar", tmp_path / "out" / "deeper")
    assert _entries(tmp_path) == ["a.tar", "out"] and _entries(tmp_path / "out") == []


def test_archives_with_links_inside_the_target_still_extract(tmp_path):
    source = tmp_path / "src"
    (source / "a").mkdir(parents=True)
    (source / "a" / "file.txt").write_text("x")
    (source / "b").symlink_to("a")
    (source / "a" / "same.txt").symlink_to("../b/file.txt")
    with tarfile.open(tmp_path / "ok.tar.gz", "w:gz") as tar:
        tar.add(source, arcname="top")
    extract_archive(tmp_path / "ok.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / "top" / "b" / "file.txt").read_text() == "x"
    assert (tmp_path / "out" / "top" / "a" / "same.txt").read_text() == "x"


def test_extraction_cut_short_leaves_no_folder_behind(tmp_path, monkeypatch):
    add_to_tar(tmp_path / "a.tar.gz", "top/one.txt", b"1")
    add_to_tar(tmp_path / "a.tar.gz", "top/two.txt", b"2")
    real = tarfile.TarFile._extract_member  # private, but where every member of extractall is written

    def crash_on_second(self, member, *args, **kwargs):
        if member.name.endswith("two.txt"):
            raise OSError("No space left on device")
        return real(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "_extract_member", crash_on_second)
    with pytest.raises(DownloadError, match=r"Could not extract .*a\.tar\.gz .*No space left.*Delete"):
        extract_archive(tmp_path / "a.tar.gz", tmp_path / "data")
    assert not (tmp_path / "data").exists(), "a half-extracted folder would be taken for data"
    assert _entries(tmp_path) == ["a.tar.gz"]


@pytest.mark.parametrize("leftover", ["truncated", "empty"])
def test_a_bad_leftover_archive_is_downloaded_afresh_or_refused_with_the_fix(leftover, tmp_path, serve_dir, caplog):
    archive, _ = write_release(tmp_path)
    url = f"{serve_dir(archive.parent)}/{archive.name}"
    data = tmp_path / "data"
    data.mkdir()
    left = data / ARCHIVE
    left.write_bytes(archive.read_bytes()[: len(archive.read_bytes()) // 2] if leftover == "truncated" else b"")

    with pytest.raises(DownloadError, match=rf"{left} is there but .*download is false\. Delete {left}"):
        ArchivedWavs(data, url=url, download=False).prepare()
    assert _entries(data) == [left.name], "refusing must neither touch the archive nor extract anything"

    with caplog.at_level(logging.INFO):
        sounds = ArchivedWavs(data, url=url)
        sounds.prepare()
    assert left.read_bytes() == archive.read_bytes(), "replaced by the fresh download"
    assert sum(len(sounds.load(split, 8000).inputs) for split in ("train", "val", "test")) == 3 * 5
    assert "unverified" in caplog.text, "the download logs the SHA-256 it got"
    assert _entries(data) == [FOLDER, left.name], "no temporary file or folder left"


def test_a_good_leftover_archive_is_extracted_without_downloading(tmp_path, caplog):
    archive, _ = write_release(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / ARCHIVE).write_bytes(archive.read_bytes())
    with caplog.at_level(logging.INFO):
        ArchivedWavs(data, url="http://127.0.0.1:9/nowhere.tar.gz", download=False).prepare()
    assert (data / FOLDER / "tone").is_dir()
    assert "Downloaded" not in caplog.text, "nothing was downloaded, so nothing may say so"


def test_a_source_downloads_and_verifies_its_release_archive(tmp_path, serve_dir):
    """A data set's release, served from a local stand-in for its host: a wrong MD5 is refused, the right one
    extracted where the source reads it, and with download off and nothing there the source says so."""
    archive, md5 = write_release(tmp_path)
    url = f"{serve_dir(archive.parent)}/{archive.name}"
    with pytest.raises(DownloadError, match="MD5"):
        ArchivedWavs(tmp_path / "bad", url=url, md5="0" * 32).prepare()
    assert _entries(tmp_path / "bad") == [], "a download that fails verification leaves nothing"
    sounds = ArchivedWavs(tmp_path / "data", url=url, md5=md5)
    sounds.prepare()
    assert sounds.folder == tmp_path / "data" / FOLDER and (sounds.folder / "chirp").is_dir()
    assert len(sounds.load("test", 8000).inputs) == 3 * 1
    with pytest.raises(FileNotFoundError, match="download is false"):
        ArchivedWavs(tmp_path / "nowhere", url=url, download=False).prepare()


def test_a_download_that_fails_verification_leaves_nothing_at_the_archive_name(tmp_path, serve_dir):
    (tmp_path / "site").mkdir()
    add_to_tar(tmp_path / "site" / "a.tar.gz", "x.txt", b"hello")
    url = f"{serve_dir(tmp_path / 'site')}/a.tar.gz"
    with pytest.raises(DownloadError, match=r"a\.tar\.gz downloaded from .* is corrupt: its MD5"):
        download_and_extract(RemoteArchive(url, "a.tar.gz", md5="0" * 32), tmp_path / "data")
    assert _entries(tmp_path / "data") == [], "neither the bad download nor its temporary name may stay"


def test_file_urls_work_for_local_mirrors(tmp_path):
    archive, md5 = write_release(tmp_path)
    sounds = ArchivedWavs(tmp_path / "data", url=archive.as_uri(), md5=md5)
    sounds.prepare()
    assert len(sounds.load("train", 8000).inputs) == 3 * 3


def test_leftovers_of_killed_processes_are_removed_and_others_kept(tmp_path, serve_dir):
    (tmp_path / "site").mkdir()
    add_to_tar(tmp_path / "site" / "a.tar.gz", "top/x.txt", b"hello")
    data = tmp_path / "data"
    data.mkdir()
    host, dead, alive = socket.gethostname(), 2**22 + 12345, os.getppid()  # beyond Linux's default pid_max
    dead_download = data / f".a.tar.gz.part-{host}-{dead}"
    dead_extraction = data / f".data.extracting-{host}-{dead}-x1y2"
    kept = [data / f".a.tar.gz.part-{host}-{alive}", data / f".a.tar.gz.part-otherhost-{dead}"]
    for path in (dead_download, *kept):
        path.write_bytes(b"half")
    (dead_extraction / "top").mkdir(parents=True)
    url = f"{serve_dir(tmp_path / 'site')}/a.tar.gz"
    download_and_extract(
        RemoteArchive(url, "a.tar.gz", md5=hashlib.md5((tmp_path / "site" / "a.tar.gz").read_bytes()).hexdigest()), data
    )
    assert (data / "top" / "x.txt").read_text() == "hello"
    assert not dead_download.exists() and not dead_extraction.exists(), "a killed process's leftovers go"
    assert all(path.exists() for path in kept), "a live process's, or another machine's, stay"
