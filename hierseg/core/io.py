"""File input and output. Every file the project reads as text or writes goes through here, so that

- a FIFO or a device where a file is expected is an error, not a reader blocked forever or reading without end;
- bytes that are not UTF-8, and operating-system faults (read-only or full file system, a folder where a file is
  expected, a file where a folder is), are one :class:`HiersegError` line naming the path and the cause;
- nothing is left half-written: a file is written to a temporary in its folder, then renamed onto its name, and a
  group of files (a tree and its label maps) is renamed into place only when every one of them was written;
- one process at a time writes into a folder that a command owns (a run folder, a remap destination): an
  exclusive ``flock`` on a lock file that names the holder's PID.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from hierseg.core.errors import HiersegError

LOCK_NAME = ".hierseg.lock"
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def os_cause(exc: OSError) -> str:
    """The cause of an OS error in a few words (``Read-only file system``, ``No space left on device``)."""
    return exc.strerror or str(exc) or type(exc).__name__


def check_regular(path: str | os.PathLike[str], what: str = "file") -> Path:
    """``path`` if it is a regular file; otherwise a one-line error (a FIFO would block its reader forever)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise HiersegError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise HiersegError(f"{path}: cannot read {what} ({os_cause(exc)})") from None
    if not stat.S_ISREG(mode):
        raise HiersegError(f"{path}: is {_kind(mode)}, not a regular file ({what})")
    return path


def read_bytes(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """The bytes of a regular file. Opened non-blocking and checked on the open descriptor, so a FIFO never blocks."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise HiersegError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise HiersegError(f"{path}: cannot read {what} ({os_cause(exc)})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise HiersegError(f"{path}: is {_kind(mode)}, not a regular file ({what})")
        with os.fdopen(fd, "rb", closefd=False) as handle:  # O_NONBLOCK changes nothing for a regular file
            return handle.read()
    except OSError as exc:
        raise HiersegError(f"{path}: cannot read {what} ({os_cause(exc)})") from None
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """A regular file decoded as UTF-8; other bytes are an error naming the line and the offset."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise HiersegError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                           f"save the {what} as UTF-8") from None


def make_folder(folder: str | os.PathLike[str], what: str = "folder") -> Path:
    """``mkdir -p`` with one-line errors: a file in the way is named, and so is the cause of any other failure."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise HiersegError(f"{folder}: cannot create the {what}: {blocker} is a file") from None
    except OSError as exc:
        raise HiersegError(f"{folder}: cannot create the {what} ({os_cause(exc)})") from None
    return folder


def write_error(path: Path, exc: OSError) -> HiersegError:
    if exc.errno == errno.EISDIR or path.is_dir():
        return HiersegError(f"{path}: is a folder; name a file to write")
    return HiersegError(f"{path}: cannot write ({os_cause(exc)})")


def _temporary(path: Path, data: bytes) -> str:
    """Write ``data`` to a new temporary beside ``path``; returns its name (removed again on any failure)."""
    if path.is_dir():
        raise HiersegError(f"{path}: is a folder; name a file to write")
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    umask = os.umask(0)
    os.umask(umask)
    with _removed_on_failure(tmp, path):
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; written files get the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    return tmp


def _replace(tmp: str, path: Path) -> None:
    with _removed_on_failure(tmp, path):
        os.replace(tmp, path)


@contextlib.contextmanager
def _removed_on_failure(tmp: str, path: Path) -> Iterator[None]:
    """Any failure (an interrupt too) removes the temporary; an OS fault becomes one line naming ``path``."""
    try:
        yield
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file in the same folder, then ``os.replace`` it onto ``path``."""
    path = Path(path)
    _replace(_temporary(path, data), path)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_group(files: Mapping[str | os.PathLike[str], bytes | str]) -> list[Path]:
    """Write several files as one unit: every temporary first, then the renames; a failure before the renames
    leaves every destination as it was."""
    written: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            written.append((_temporary(path, data.encode("utf-8") if isinstance(data, str) else data), path))
    except BaseException:
        for tmp, _ in written:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    for tmp, path in written:
        _replace(tmp, path)
    return [path for _, path in written]


def is_temporary(name: str) -> bool:
    """A temporary of :func:`atomic_write_bytes` (``.NAME.XXXXXXXX.tmp``): left only by a killed process."""
    return name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3


def remove_temporaries(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Delete the temporaries killed writers left in ``folder``. Only the holder of the folder's lock may call this:
    another writer's temporary is in use until its rename."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in (folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")) if is_temporary(p.name)]
    for path in found:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HiersegError(f"{path}: cannot remove a stale temporary ({os_cause(exc)})") from None
    return found


_held: set[int] = set()


def _close_held_in_child() -> None:
    # A forked worker (DataLoader, multiprocessing pool) must not keep the lock alive after its parent is gone.
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


class FolderLock:
    """An exclusive ``flock`` on ``FOLDER/.hierseg.lock``, held while one process writes the folder.

    The lock file names the holder's PID; a second process fails at once with that PID in the message. The
    operating system releases the lock when the holder exits, however it exits, so a lock is never stale.
    """

    def __init__(self, folder: str | os.PathLike[str], what: str = "command") -> None:
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None
        self.created_folder = False

    def acquire(self) -> FolderLock:
        import fcntl

        self.created_folder = not self.folder.exists()
        make_folder(self.folder)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            raise HiersegError(f"{self.folder}: cannot lock the folder ({os_cause(exc)}: {self.path})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self.busy_error(holder) from None
            raise HiersegError(f"{self.folder}: cannot lock the folder ({os_cause(exc)})") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only the PID goes unnamed; the first write will say why
        self.fd = fd
        _held.add(fd)
        return self

    @staticmethod
    def holder(folder: str | os.PathLike[str]) -> str | None:
        """The PID holding ``folder``'s lock, or None; creates and writes nothing (a check before a run starts)."""
        import fcntl

        try:
            fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        finally:
            os.close(fd)  # also drops the shared lock taken just now
        return None

    def busy_error(self, holder: str) -> HiersegError:
        return HiersegError(f"{self.folder}: in use by another hierseg {self.what} (PID {holder}, lock {self.path}); "
                            "wait for it to finish or choose another folder")

    def release(self, remove_created: bool = False) -> None:
        """Unlock. ``remove_created``: also remove the folder if :meth:`acquire` created it and it holds nothing else
        (a run refused before it wrote anything leaves no trace)."""
        if self.fd is None:
            return
        if remove_created and self.created_folder and {p.name for p in self.folder.iterdir()} == {LOCK_NAME}:
            self.path.unlink()
            self.folder.rmdir()
        _held.discard(self.fd)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
