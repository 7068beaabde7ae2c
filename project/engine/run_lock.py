"""The lock a fit holds on its run folder: an OS lock (`flock`, or `msvcrt.locking` on Windows) on the folder's
lock file, which the OS frees when its process ends, however it ends (a kill, a crash, a full disk). What the
file holds (the holder's process id, for the message) is never trusted: an empty, garbled or foreign file, a
folder or a dangling link in its place does not keep a later fit out."""

import errno
import os
from pathlib import Path

from project.engine.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

_held: dict[Path, int] = {}  # lock file -> the descriptor this process holds it through


def acquire(lock: Path) -> int | None:
    """Hold `lock` for this process (again, if it holds it already). None when held; else the process id the
    holder wrote into it (0 when unreadable): another live process holds it."""
    lock = lock.absolute()
    if lock in _held:
        return None
    while True:
        _clear_the_way(lock)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        if not _lock(fd):
            holder = _holder(fd)
            os.close(fd)
            return holder
        try:  # the file may have been removed by the holder releasing it just before: lock the one at the path
            same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[lock] = fd
    return None


def release(lock: Path) -> None:
    """Give up `lock` if this process holds it, removing its file (first: a waiter then locks a new one)."""
    fd = _held.pop(lock.absolute(), None)
    if fd is None:
        return
    lock.unlink(missing_ok=True)
    os.close(fd)


def _lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK):
            return False
        raise
    return True


def _holder(fd: int) -> int:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").split()
        pid = int(text[0]) if text else 0
    except (OSError, ValueError, AttributeError):
        return 0
    return pid if 0 < pid < 2**31 else 0


def _clear_the_way(lock: Path) -> None:
    """Remove what stands at the lock's path and is not a lock file: a link (never followed), a fifo, an empty
    folder. A folder with files in it is the user's to remove."""
    if not os.path.lexists(lock) or (lock.is_file() and not lock.is_symlink()):
        return
    if lock.is_dir() and not lock.is_symlink():
        try:
            lock.rmdir()
        except OSError:
            raise ConfigError(
                f"{lock} is a folder with files in it, where a fit keeps its lock file: remove it (rm -r {lock})"
            ) from None
        return
    lock.unlink()
