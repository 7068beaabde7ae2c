"""Whether an archive is safe to extract: ours, because `tarfile`'s `filter="data"` alone lets
CVE-2025-4517's symlink chain through on some supported Pythons, and zip has no filter at all."""

import posixpath
import re
import tarfile


def unsafe_zip_member(names: list[str]) -> str | None:
    """The first member that could write outside the folder (zipfile writes no links), or None."""
    return next((f"member {name!r}" for name in names if escapes(name)), None)


_DRIVE = re.compile(r"[A-Za-z]:")  # C:..., which Windows reads as another drive


def escapes(name: str) -> bool:
    """Whether an archive path could lead outside its folder or be read two ways: absolute, a drive, any
    ".." (a symlink before it would move it), a backslash (a separator only on Windows)."""
    return name.startswith("/") or _DRIVE.match(name) is not None or "\\" in name or ".." in name.split("/")


def unsafe_tar_member(members: list[tarfile.TarInfo]) -> str | None:
    """What makes the archive unsafe, or None when it only creates files, folders and links inside its folder
    (members named once, not written through a link, links resolving inside it). Checked on the archive's
    paths, never on the file system, whose PATH_MAX limit is what CVE-2025-4517 exploits."""
    kinds: dict[str, tarfile.TarInfo] = {}
    for member in members:
        name = posixpath.normpath(member.name)
        if escapes(member.name):
            return f"member {member.name!r}"
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            return f"member {member.name!r} is a device, FIFO or other special file"
        if name in kinds and not (member.isdir() and kinds[name].isdir()):
            return f"member {member.name!r} appears twice"
        kinds[name] = member
    links = {name: member.linkname for name, member in kinds.items() if member.issym()}
    for name, member in kinds.items():
        parts = name.split("/")
        through = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if any(prefix in links or (prefix in kinds and not kinds[prefix].isdir()) for prefix in through):
            return f"member {member.name!r} is written through a link or file"
        if member.issym():
            parent = posixpath.dirname(name)
            target = posixpath.join(parent, member.linkname)
            if member.linkname.startswith("/") or "\\" in member.linkname or _resolve(target, links) is None:
                return f"symlink {member.name!r} -> {member.linkname!r}"
        if member.islnk():
            source = kinds.get(posixpath.normpath(member.linkname))
            if escapes(member.linkname) or source is None or not source.isfile():
                return f"hard link {member.name!r} -> {member.linkname!r}"
    return None


def _resolve(path: str, links: dict[str, str], hops: int = 40) -> str | None:
    """Where `path` leads once the archive's symlinks in it are followed; None if it leaves or loops."""
    pending = [part for part in path.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        candidate = "/".join([*resolved, part])
        if candidate in links:
            hops -= 1
            target = links[candidate]
            if hops < 0 or target.startswith("/"):
                return None
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return "/".join(resolved)
