"""hierseg.core.io: reads that never block or run forever, one-line OS errors, all-or-nothing groups of files,
and the folder lock (two real processes)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time

import pytest

from hierseg.core import io as hio
from hierseg.core.errors import HiersegError


def test_reads_refuse_fifos_devices_and_folders_at_once(tmp_path):
    fifo = tmp_path / "tree.json"
    os.mkfifo(fifo)
    start = time.monotonic()
    for path, kind in ((fifo, "a FIFO"), ("/dev/zero", "a character device"), (tmp_path, "a folder")):
        with pytest.raises(HiersegError, match=f"is {kind}, not a regular file"):
            hio.read_text(path, "taxonomy")
        with pytest.raises(HiersegError, match=f"is {kind}, not a regular file"):
            hio.check_regular(path, "image")
    assert time.monotonic() - start < 5  # nothing waited for a writer
    with pytest.raises(HiersegError, match="missing.json: no such taxonomy"):
        hio.read_text(tmp_path / "missing.json", "taxonomy")


def test_text_that_is_not_utf8_names_the_line_and_byte(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"id,name\n1,caf\xe9\n")
    with pytest.raises(HiersegError) as info:
        hio.read_text(path, "label table")
    assert str(info.value) == (f"{path}:2: not UTF-8 text (byte 0xe9 at offset 13); save the label table as UTF-8")


def test_write_errors_are_one_line_naming_the_path(tmp_path):
    folder = tmp_path / "a_dir"
    folder.mkdir()
    with pytest.raises(HiersegError, match=f"^{folder}: is a folder; name a file to write$"):
        hio.atomic_write_bytes(folder, b"x")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(HiersegError, match=f"^{blocker / 'deeper'}: cannot create the folder: {blocker} is a file$"):
        hio.atomic_write_bytes(blocker / "deeper" / "out.json", b"x")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(("code", "cause"), [(errno.EROFS, "Read-only file system"),
                                              (errno.ENOSPC, "No space left on device"),
                                              (errno.EACCES, "Permission denied")])
def test_write_faults_leave_nothing_behind(tmp_path, monkeypatch, code, cause):
    target = tmp_path / "out.json"
    target.write_text("old")
    real_replace = os.replace

    def failing(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[0]))

    monkeypatch.setattr(hio.os, "replace", failing)
    with pytest.raises(HiersegError, match=f"^{target}: cannot write \\({cause}\\)$"):
        hio.atomic_write_bytes(target, b"new")
    monkeypatch.setattr(hio.os, "replace", real_replace)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_real_read_only_and_full_file_systems(read_only_dir, full_dir):
    with pytest.raises(HiersegError, match=f"^{read_only_dir / 'x.json'}: cannot write \\(Read-only file system\\)$"):
        hio.atomic_write_bytes(read_only_dir / "x.json", b"{}")
    with pytest.raises(HiersegError, match="cannot create the folder \\(Read-only file system\\)"):
        hio.atomic_write_bytes(read_only_dir / "new" / "x.json", b"{}")
    with pytest.raises(HiersegError, match=f"^{full_dir / 'x.bin'}: cannot write \\(No space left on device\\)$"):
        hio.atomic_write_bytes(full_dir / "x.bin", os.urandom(64 << 10))
    assert not list(full_dir.glob(".x.bin.*"))  # the temporary is gone


def test_a_group_of_files_is_written_all_or_nothing(tmp_path):
    tree, maps = tmp_path / "tree.json", tmp_path / "maps"
    tree.write_text("old tree")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the second folder should be")
    with pytest.raises(HiersegError, match="blocked is a file"):
        hio.atomic_write_group({tree: "new tree", maps / "a.csv": "a", blocked / "b.csv": "b"})
    assert tree.read_text() == "old tree" and not list(maps.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "maps", "tree.json"]
    written = hio.atomic_write_group({tree: "new tree", maps / "a.csv": "a"})
    assert written == [tree, maps / "a.csv"] and tree.read_text() == "new tree"


def test_stale_temporaries_are_recognised_and_removed(tmp_path):
    (tmp_path / ".last.pt.k1ll3d.tmp").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".a.png.abc123.tmp").write_bytes(b"x")
    (tmp_path / ".user.tmp").write_text("not ours")  # two dots: not an atomic-write temporary
    assert [p.name for p in hio.remove_temporaries(tmp_path)] == [".last.pt.k1ll3d.tmp"]
    assert [p.name for p in hio.remove_temporaries(tmp_path, recursive=True)] == [".a.png.abc123.tmp"]
    assert (tmp_path / ".user.tmp").exists()


HOLD = textwrap.dedent("""
    import sys, time
    from hierseg.core.io import FolderLock
    lock = FolderLock(sys.argv[1], "test").acquire()
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def test_folder_lock_admits_one_process_and_names_the_holder(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(HiersegError) as info:
            hio.FolderLock(folder, "training run").acquire()
        assert time.monotonic() - start < 1  # refused at once, not queued
        assert str(info.value).startswith(f"{folder}: in use by another hierseg training run (PID {holder.pid}, ")
    finally:
        holder.kill()
        holder.wait()
    # the holder died without unlocking: the operating system released the lock with it
    with hio.FolderLock(folder) as lock:
        assert (folder / hio.LOCK_NAME).read_text().strip() == str(os.getpid()) and lock.fd is not None


def test_folder_lock_is_not_kept_alive_by_forked_children(tmp_path):
    lock = hio.FolderLock(tmp_path / "run").acquire()
    ready, ping = os.pipe()
    child = os.fork()
    if child == 0:  # a worker that outlives its parent's lock must not hold it
        os.write(ping, b"x")
        time.sleep(3)
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"x"  # the child is past fork()
        lock.release()
        hio.FolderLock(tmp_path / "run").acquire().release()
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)


def test_a_refused_lock_leaves_no_folder_it_created(tmp_path):
    lock = hio.FolderLock(tmp_path / "new").acquire()
    lock.release(remove_created=True)
    assert not (tmp_path / "new").exists()


def test_writes_never_follow_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.json"
    link.symlink_to(victim)
    with pytest.raises(HiersegError, match=f"^{link}: is a symbolic link; hierseg does not write through links"):
        hio.atomic_write_bytes(link, b"{}")
    with pytest.raises(HiersegError, match="is a symbolic link"):
        hio.atomic_write_group({tmp_path / "a.csv": "a", link: "b"})
    with pytest.raises(HiersegError, match="is a symbolic link"):
        os.close(hio.open_output(link))
    assert victim.read_text() == "precious" and link.is_symlink() and not (tmp_path / "a.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "victim.txt"]  # no temporary left


def test_a_linked_sub_folder_of_an_output_folder_is_refused(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "labels").symlink_to(outside)
    with pytest.raises(HiersegError, match=f"^{out / 'labels'}: is a symbolic link inside the output folder {out}"):
        hio.atomic_write_bytes(out / "labels" / "deep" / "a.png", b"x", root=out)
    with hio.writing_into(out):  # declared once, every write below it is checked
        with pytest.raises(HiersegError, match="is a symbolic link inside the output folder"):
            hio.atomic_write_bytes(out / "labels" / "a.png", b"x")
        hio.atomic_write_bytes(out / "real" / "deeper" / "a.png", b"x")
    assert not any(outside.iterdir()) and (out / "real" / "deeper" / "a.png").read_bytes() == b"x"
    # the output folder itself may be a link the user named
    named = tmp_path / "named"
    named.symlink_to(outside)
    hio.atomic_write_bytes(named / "sub" / "b.png", b"y", root=named)
    assert (outside / "sub" / "b.png").read_bytes() == b"y"


def test_a_linked_lock_file_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / hio.LOCK_NAME).symlink_to(victim)
    with pytest.raises(HiersegError, match=r"\.hierseg\.lock: is a symbolic link"):
        hio.FolderLock(tmp_path / "run").acquire()
    assert victim.read_text() == "precious"
    assert hio.FolderLock.holder(tmp_path / "run") is None


def test_reads_are_bounded(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 2048)
    with pytest.raises(HiersegError, match=f"^{path}: .* larger than a taxonomy may be"):
        hio.read_text(path, "taxonomy", limit=1024)
    assert len(hio.read_bytes(path, limit=None)) == 2048
