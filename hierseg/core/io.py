"""File input and output. Every file the project reads as text or writes goes through here, so that

- a FIFO or a device where a file is expected is an error, not a reader blocked forever or reading without end;
- bytes that are not UTF-8, and operating-system faults (read-only or full file system, a folder where a file is
  expected, a file where a folder is), are one :class:`HiersegError` line naming the path and the cause;
- nothing is left half-written: a file is written to a temporary in its folder, then renamed onto its name, and a
  group of files (a tree and its label maps) is renamed into place only when every one of them was written;
- a read is bounded (:data:`MAX_READ`, 256 MiB unless the caller says otherwise), so a huge or endless file is one
  line, not a process that eats the machine's memory;
- writes never follow symbolic links: a link where a file is to be written is refused (the link is not replaced and
  its target not written), and below an output folder (:func:`writing_into`, a :class:`FolderLock`) every sub-folder
  on the way is opened with ``O_NOFOLLOW``, so a symlinked sub-folder cannot send outputs elsewhere;
- one process at a time writes into a folder that a command owns (a run folder, a remap destination): an
  exclusive ``flock`` on a lock file that names the holder's PID.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from hierseg.core.errors import HiersegError

LOCK_NAME = ".hierseg.lock"
MAX_READ = 256 << 20  # bytes: far above any config, spec, tree, label table or log the project reads as a whole
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
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


def _size(count: int) -> str:
    return f"{count / (1 << 30):.1f} GiB" if count >= 1 << 30 else f"{count / (1 << 20):.0f} MiB"


def read_bytes(path: str | os.PathLike[str], what: str = "file", limit: int | None = MAX_READ) -> bytes:
    """The bytes of a regular file. Opened non-blocking and checked on the open descriptor, so a FIFO never blocks;
    a file of more than ``limit`` bytes (None: no limit) is an error naming its size, read or not."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
    except FileNotFoundError:
        raise HiersegError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise HiersegError(f"{path}: cannot read {what} ({os_cause(exc)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HiersegError(f"{path}: is {_kind(info.st_mode)}, not a regular file ({what})")
        if limit is not None and info.st_size > limit:
            raise _too_large(path, what, info.st_size, limit)
        with os.fdopen(fd, "rb", closefd=False) as handle:  # O_NONBLOCK changes nothing for a regular file
            data = handle.read() if limit is None else handle.read(limit + 1)  # it may grow while read
        if limit is not None and len(data) > limit:
            raise _too_large(path, what, len(data), limit)
        return data
    except OSError as exc:
        raise HiersegError(f"{path}: cannot read {what} ({os_cause(exc)})") from None
    finally:
        os.close(fd)


def _too_large(path: Path, what: str, size: int, limit: int) -> HiersegError:
    return HiersegError(f"{path}: {_size(size)} or more, larger than a {what} may be ({_size(limit)}); is it the "
                        "right file?")


def read_text(path: str | os.PathLike[str], what: str = "file", limit: int | None = MAX_READ) -> str:
    """A regular file decoded as UTF-8; other bytes are an error naming the line and the offset."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise HiersegError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                           f"save the {what} as UTF-8") from None


def make_folder(folder: str | os.PathLike[str], what: str = "folder", root: str | os.PathLike[str] | None = None) -> Path:
    """``mkdir -p`` with one-line errors: a file in the way is named, and so is the cause of any other failure.
    Below an output folder (``root``, or the one :func:`writing_into` declared) no sub-folder may be a link."""
    folder = Path(folder)
    os.close(_open_folder(folder, what, _root_of(folder, root)))
    return folder


def _mkdir_p(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise HiersegError(f"{folder}: cannot create the {what}: {blocker} is a file") from None
    except OSError as exc:
        raise HiersegError(f"{folder}: cannot create the {what} ({os_cause(exc)})") from None


# Output folders this process writes into (a run folder, a remap destination, predict's --out): below them a link
# is never followed. Forked workers inherit them with the module.
_roots: list[Path] = []


@contextlib.contextmanager
def writing_into(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Declare ``folder`` an output folder while the block runs: every write below it goes through real folders
    only (the folder itself may be a link the user named)."""
    folder = Path(os.path.abspath(folder))
    _roots.append(folder)
    try:
        yield folder
    finally:
        _roots.remove(folder)


def _root_of(folder: Path, root: str | os.PathLike[str] | None) -> Path | None:
    """The output folder ``folder`` lies in: ``root``, or the innermost declared one (None: the folder itself)."""
    absolute = Path(os.path.abspath(folder))
    candidates = [Path(os.path.abspath(root))] if root is not None else _roots
    inside = [r for r in candidates if absolute == r or absolute.is_relative_to(r)]
    return max(inside, key=lambda r: len(r.parts)) if inside else None


def _open_folder(folder: Path, what: str, root: Path | None) -> int:
    """A descriptor of ``folder``, created as needed. Below ``root`` each sub-folder is created and opened relative
    to its parent's descriptor with ``O_NOFOLLOW``: a link (or a link swapped in meanwhile) is refused."""
    absolute = Path(os.path.abspath(folder))
    base = root if root is not None else absolute
    _mkdir_p(base if root is not None else folder, what)
    try:
        fd = os.open(base, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except OSError as exc:
        raise HiersegError(f"{folder}: cannot open the {what} ({os_cause(exc)})") from None
    here = base
    for part in absolute.relative_to(base).parts:
        here = here / part
        try:
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                pass
            child = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            if os.path.islink(here):
                raise HiersegError(f"{here}: is a symbolic link inside the output folder {base}; hierseg does not "
                                   "write through links there (remove it, or make it a real folder)") from None
            if exc.errno in (errno.ENOTDIR, errno.EEXIST):
                raise HiersegError(f"{folder}: cannot create the {what}: {here} is a file") from None
            raise HiersegError(f"{folder}: cannot create the {what} ({os_cause(exc)})") from None
        os.close(fd)
        fd = child
    return fd


def write_error(path: Path, exc: OSError) -> HiersegError:
    if exc.errno == errno.EISDIR or path.is_dir():
        return HiersegError(f"{path}: is a folder; name a file to write")
    return HiersegError(f"{path}: cannot write ({os_cause(exc)})")


def _check_target(fd: int, path: Path) -> None:
    """``path`` (``path.name`` in the folder ``fd``) may be replaced: it is absent or a regular file, never a link."""
    try:
        mode = os.lstat(path.name, dir_fd=fd).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise write_error(path, exc) from None
    if stat.S_ISLNK(mode):
        raise HiersegError(f"{path}: is a symbolic link; hierseg does not write through links (remove it, or name "
                           "another file)")
    if stat.S_ISDIR(mode):
        raise HiersegError(f"{path}: is a folder; name a file to write")


def _temporary(path: Path, data: bytes, root: str | os.PathLike[str] | None = None) -> tuple[int, str]:
    """Write ``data`` to a new temporary beside ``path``; returns its folder's descriptor and its name (removed
    again on any failure)."""
    if path.is_dir() and not path.is_symlink():
        raise HiersegError(f"{path}: is a folder; name a file to write")
    fd = _open_folder(path.parent, "folder", _root_of(path.parent, root))
    try:
        _check_target(fd, path)
        while True:
            tmp = f".{path.name}.{secrets.token_hex(4)}.tmp"
            try:  # the umask applies, as to any file the user writes
                handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666, dir_fd=fd)
                break
            except FileExistsError:
                continue
    except OSError as exc:
        os.close(fd)
        raise write_error(path, exc) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        with _removed_on_failure(fd, tmp, path), os.fdopen(handle, "wb") as out:
            out.write(data)
    except BaseException:
        os.close(fd)
        raise
    return fd, tmp


def _replace(fd: int, tmp: str, path: Path) -> None:
    try:
        with _removed_on_failure(fd, tmp, path):
            os.replace(tmp, path.name, src_dir_fd=fd, dst_dir_fd=fd)  # replaces a link swapped in, never follows it
    finally:
        os.close(fd)


@contextlib.contextmanager
def _removed_on_failure(fd: int, tmp: str, path: Path) -> Iterator[None]:
    """Any failure (an interrupt too) removes the temporary; an OS fault becomes one line naming ``path``."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=fd)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, root: str | os.PathLike[str] | None = None) -> Path:
    """Write ``data`` to a temporary file in the same folder, then ``os.replace`` it onto ``path``. ``path`` may not
    be a link, nor (below the output folder ``root`` or a declared one) any folder on the way to it."""
    path = Path(path)
    _replace(*_temporary(path, data, root), path)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str, root: str | os.PathLike[str] | None = None) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), root)


def atomic_write_group(files: Mapping[str | os.PathLike[str], bytes | str],
                       root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write several files as one unit: every temporary first, then the renames; a failure before the renames
    leaves every destination as it was."""
    written: list[tuple[int, str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            written.append((*_temporary(path, data.encode("utf-8") if isinstance(data, str) else data, root), path))
    except BaseException:
        for fd, tmp, _ in written:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            os.close(fd)
        raise
    for i, (fd, tmp, path) in enumerate(written):
        try:
            _replace(fd, tmp, path)
        except BaseException:
            for later_fd, _, _ in written[i + 1:]:
                os.close(later_fd)
            raise
    return [path for _, _, path in written]


def open_output(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
                append: bool = False) -> int:
    """A descriptor of ``path`` for writing in place (a log written line by line), created or truncated; a link
    there, or a linked folder below the output folder, is refused as in :func:`atomic_write_bytes`."""
    path = Path(path)
    fd = _open_folder(path.parent, "folder", _root_of(path.parent, root))
    try:
        _check_target(fd, path)
        flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
        return os.open(path.name, flags, 0o666, dir_fd=fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        os.close(fd)


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
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o666)
        except OSError as exc:
            if os.path.islink(self.path):  # O_NOFOLLOW: its target is never truncated nor written
                raise HiersegError(f"{self.path}: is a symbolic link; hierseg does not write through links (remove "
                                   "it)") from None
            raise HiersegError(f"{self.folder}: cannot lock the folder ({os_cause(exc)}: {self.path})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise HiersegError(f"{self.path}: is not a regular file; remove it (it is the folder's lock file)")
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
        _roots.append(Path(os.path.abspath(self.folder)))  # the holder writes there: through real folders only
        return self

    @staticmethod
    def holder(folder: str | os.PathLike[str]) -> str | None:
        """The PID holding ``folder``'s lock, or None; creates and writes nothing (a check before a run starts)."""
        import fcntl

        try:
            fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC)
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
        with contextlib.suppress(ValueError):
            _roots.remove(Path(os.path.abspath(self.folder)))

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
