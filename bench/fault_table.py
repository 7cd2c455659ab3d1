"""Fault table (issue 15): bad inputs, faults and interruptions against a ``hierseg`` executable, one row per case.

Not a benchmark and not a test: a before/after record. Point it at any installed ``hierseg`` (this worktree's, or
another checkout's) and it prints, per case, what happened: the exit code, seconds, whether a traceback was printed,
whether it hung (killed after a deadline), processes left behind, and the first ``error:``/``warning:`` line.

    sudo-less root on Linux:  python bench/fault_table.py --hierseg .venv/bin/hierseg --work /tmp/faults [--only KEY]

Read-only and full file systems are real: a read-only bind mount and a 256 KiB tmpfs (needs root and mount; the
cases are marked ``skipped`` otherwise). Everything is written under ``--work``; mounts are undone at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml


@dataclass
class Outcome:
    case: str
    fault: str
    rc: int | None = None
    seconds: float = 0.0
    hang: bool = False
    traceback: bool = False
    leftover: int = 0
    line: str = ""
    extra: str = ""
    stderr_lines: int = 0

    def summary(self) -> str:
        if self.hang:
            what = f"HANG (killed after {self.seconds:.0f} s)"
        elif self.traceback:
            what = f"traceback, exit {self.rc}"
        else:
            what = f"exit {self.rc}"
        if self.leftover:
            what += f", {self.leftover} processes left"
        parts = [what, f"{self.seconds:.1f} s", self.line[:150]]
        if self.extra:
            parts.append(self.extra)
        return " | ".join(p for p in parts if p)


@dataclass
class Context:
    hierseg: Path
    python: Path
    work: Path
    results: list[Outcome] = field(default_factory=list)
    mounts: list[Path] = field(default_factory=list)
    glob: list[str] = field(default_factory=list)  # --glob '*.png' where labels remap/stats read layouts by default


def _session_members(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def run(ctx: Context, case: str, fault: str, args: list[str], timeout: float = 60, *, python: bool = False,
        term_after: float | None = None, limit_as: int | None = None, cwd: Path | None = None,
        record: bool = True) -> tuple[Outcome, str, str]:
    """Run ``hierseg ARGS`` (or ``python ARGS``) in its own process group; on the deadline SIGTERM the main process,
    then SIGKILL the group. ``term_after`` sends SIGTERM after that many seconds (an interruption, not a deadline)."""
    exe = str(ctx.python if python else ctx.hierseg)

    def limits() -> None:
        if limit_as:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    start = time.monotonic()
    proc = subprocess.Popen([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=limits, cwd=cwd or ctx.work, errors="replace")
    hang, extra = False, ""
    try:
        if term_after is not None:
            try:
                out, err = proc.communicate(timeout=term_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=timeout)
        else:
            out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hang = True
        proc.send_signal(signal.SIGTERM)  # what a user does first
        try:
            out, err = proc.communicate(timeout=15)
            extra = "exited on SIGTERM after the deadline"
        except subprocess.TimeoutExpired:
            extra = "SIGTERM ignored; SIGKILL"
            for pid in _session_members(proc.pid):
                os.kill(pid, signal.SIGKILL)
            out, err = proc.communicate()
    seconds = time.monotonic() - start
    time.sleep(1.0)
    leftover = _session_members(proc.pid)
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    lines = [line for line in err.splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith(("error:", "warning:", "interrupted"))),
                 lines[-1] if lines else "")
    outcome = Outcome(case, fault, proc.returncode, round(seconds, 1), hang, "Traceback" in err, len(leftover),
                      first.strip(), extra, len(lines))
    if record:
        ctx.results.append(outcome)
        print(f"{case:38s} {outcome.summary()}", flush=True)
    return outcome, out, err


def note(ctx: Context, outcome: Outcome, extra: str) -> None:
    outcome.extra = "; ".join(p for p in (outcome.extra, extra) if p)
    print(f"{'':38s} -> {extra}", flush=True)


# ------------------------------------------------------------------------------------------------------ set-up


def write_config(path: Path, data: Path, out: Path, model: dict, datasets=("cityscapes",), workers: int = 0,
                 steps: int = 2, extra: dict | None = None) -> Path:
    raw = {"model": model,
           "data": {"workers": workers, "datasets": [{"name": d, "root": str(data / d), "crop": 65, "batch_size": 2}
                                                     for d in datasets]},
           "schedule": {"steps": steps}, "optim": {"lr_head": 0.01, "lr_backbone": 0.001}, "run": {"device": "cpu"},
           "output": {"dir": str(out), "log_every": 1, "checkpoint_every": 0}}
    for key, value in (extra or {}).items():
        raw[key].update(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


DEEPLAB = {"name": "deeplab_resnet18", "kwargs": {"output_stride": 16}}
DSSPN = {"name": "dsspn_resnet18", "kwargs": {"m": 8, "m0": 32, "output_stride": 16}}


def setup(ctx: Context) -> dict[str, Path]:
    w = ctx.work
    data = w / "data"
    for name in ("cityscapes", "mapillary"):
        if not (data / name).exists():
            subprocess.run([str(ctx.hierseg), "data", "synth", "--dataset", name, "--out", str(data / name), "--n", "4",
                            "--size", "72", "--seed", "1"], check=True, capture_output=True)
    models = w / "models"
    if not (models / "deeplab" / "model.pt").exists():
        cfg = write_config(models / "deeplab.yaml", data, models / "deeplab", DEEPLAB, steps=1)
        subprocess.run([str(ctx.hierseg), "train", "--config", str(cfg)], check=True, capture_output=True)
    if not (models / "dsspn" / "model.pt").exists():
        cfg = write_config(models / "dsspn.yaml", data, models / "dsspn", DSSPN, steps=1)
        subprocess.run([str(ctx.hierseg), "train", "--config", str(cfg)], check=True, capture_output=True)
    ro_src, ro = w / "ro_src", w / "ro"
    full = w / "full"
    for folder in (ro, full):  # mounts a killed earlier run left behind
        while os.path.ismount(folder):
            subprocess.run(["umount", str(folder)], capture_output=True, check=True)
    for folder in (ro_src, ro, full):
        folder.mkdir(exist_ok=True)
    (ro_src / "sub").mkdir(exist_ok=True)
    paths = {"data": data, "deeplab": models / "deeplab" / "model.pt", "dsspn": models / "dsspn" / "model.pt"}
    try:
        subprocess.run(["mount", "--bind", str(ro_src), str(ro)], check=True, capture_output=True)
        ctx.mounts.append(ro)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True, capture_output=True)
        paths["ro"] = ro
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], check=True, capture_output=True)
        ctx.mounts.append(full)
        try:  # fill it: every later write gets ENOSPC
            with open(full / "filler", "wb", buffering=0) as handle:
                while True:
                    handle.write(b"\0" * 4096)
        except OSError:
            pass
        paths["full"] = full
    except (OSError, subprocess.CalledProcessError):
        pass
    return paths


def teardown(ctx: Context) -> None:
    for mount in reversed(ctx.mounts):
        subprocess.run(["umount", str(mount)], capture_output=True)


def fresh(ctx: Context, name: str) -> Path:
    path = ctx.work / "cases" / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def corrupt_copy(ctx: Context, paths: dict[str, Path], name: str, dataset: str) -> Path:
    root = fresh(ctx, name)
    shutil.copytree(paths["data"] / dataset, root / dataset)
    return root


# ------------------------------------------------------------------------------------------------------- cases


def hangs(ctx: Context, p: dict[str, Path]) -> None:
    import numpy as np
    from PIL import Image

    # 1. one bad sample behind DataLoader workers
    root = corrupt_copy(ctx, p, "bad_label", "cityscapes")
    label = sorted((root / "cityscapes" / "gtFine" / "train").rglob("*.png"))[2]
    array = np.asarray(Image.open(label)).copy()
    array[5, 5] = 200
    Image.fromarray(array).save(label)
    for workers in (0, 2):
        cfg = write_config(root / f"w{workers}.yaml", root, root / f"run{workers}", DEEPLAB, workers=workers, steps=4)
        run(ctx, f"train bad label, workers={workers}", "hang", ["train", "--config", str(cfg)], timeout=90)
    cfg = write_config(root / "skip.yaml", root, root / "runskip", DEEPLAB, workers=2, steps=4,
                       extra={"data": {"on_error": "skip"}})
    run(ctx, "train bad label, workers=2, skip", "hang", ["train", "--config", str(cfg)], timeout=120)

    root = corrupt_copy(ctx, p, "bad_jpeg", "mapillary")
    image = sorted((root / "mapillary" / "training" / "images").glob("*.jpg"))[1]
    image.write_bytes(image.read_bytes()[:300])
    cfg = write_config(root / "w2.yaml", root, root / "run", DEEPLAB, ("mapillary",), workers=2, steps=4)
    run(ctx, "train truncated jpeg, workers=2", "hang", ["train", "--config", str(cfg)], timeout=90)

    # 2. indexing past the end
    code = ("from hierseg.data.readers import official\n"
            f"d = official('cityscapes', {str(p['data'] / 'cityscapes')!r}, 'train')\n"
            "try:\n    d[len(d)]\n    print('no IndexError: got a sample')\n"
            "except IndexError as e:\n    print('IndexError', e)\n"
            "print('list() gives', len(list(d)), 'samples')\n")
    outcome, out, _ = run(ctx, "dataset[len(d)], list(dataset)", "hang", ["-c", code], timeout=30, python=True)
    note(ctx, outcome, out.strip().replace("\n", "; "))

    # 3. FIFOs and devices where a file is expected
    d = fresh(ctx, "fifo")
    fifo = d / "pipe.json"
    os.mkfifo(fifo)
    run(ctx, "FIFO as tree (taxonomy validate)", "hang", ["taxonomy", "validate", str(fifo), "--no-wordnet"], timeout=15)
    run(ctx, "FIFO as tree (taxonomy show)", "hang", ["taxonomy", "show", str(fifo)], timeout=15)
    run(ctx, "/dev/zero as tree (3 GB cap)", "hang", ["taxonomy", "stats", "/dev/zero"], timeout=20, limit_as=3 << 30)
    run(ctx, "FIFO as config (train)", "hang", ["train", "--config", str(fifo)], timeout=15)
    run(ctx, "FIFO as label CSV (data check)", "hang",
        ["data", "check", str(p["data"] / "cityscapes"), "--dataset", "mine", "--labels", str(fifo)], timeout=15)
    run(ctx, "FIFO as checkpoint (eval)", "hang", ["eval", "--checkpoint", str(fifo), "--dataset", "cityscapes",
                                                   str(p["data"] / "cityscapes")], timeout=15)
    src = d / "labels"
    src.mkdir()
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(src / "a.png")
    os.mkfifo(src / "b.png")
    run(ctx, "FIFO .png in remap SRC", "hang", ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to",
                                                "mapillary", str(src), str(d / "out")], timeout=15)
    run(ctx, "FIFO .png in labels stats", "hang", ["labels", "stats", *ctx.glob, "--dataset", "cityscapes", str(src)],
        timeout=15)
    root = corrupt_copy(ctx, p, "fifo_image", "mapillary")
    image = sorted((root / "mapillary" / "validation" / "images").glob("*.jpg"))[0]
    image.unlink()
    os.mkfifo(image)
    run(ctx, "FIFO image in data check", "hang",
        ["data", "check", str(root / "mapillary"), "--dataset", "mapillary", "--split", "validation"], timeout=15)
    run(ctx, "FIFO image in predict folder", "hang",
        ["predict", "--checkpoint", str(p["deeplab"]), "--dataset", "cityscapes", str(image.parent),
         "--out", str(d / "pred")], timeout=60)


def overwrites(ctx: Context, p: dict[str, Path]) -> None:
    import numpy as np
    from PIL import Image

    d = fresh(ctx, "lock")
    cfg = write_config(d / "c.yaml", p["data"], d / "run", DEEPLAB, steps=3)
    exe = [str(ctx.hierseg), "train", "--config", str(cfg)]
    start = time.monotonic()
    procs = [subprocess.Popen(exe, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [proc.communicate(timeout=300) for proc in procs]
    seconds = time.monotonic() - start
    codes = [proc.returncode for proc in procs]
    errs = [next((line for line in err.splitlines() if line.startswith("error:")), "") for _, err in outs]
    outcome = Outcome("two trains, one output.dir", "overwrite", max(codes), round(seconds, 1), False,
                      any("Traceback" in err for _, err in outs), 0, " / ".join(e for e in errs if e),
                      f"exit codes {codes}")
    ctx.results.append(outcome)
    print(f"{outcome.case:38s} {outcome.summary()}", flush=True)

    (d / "run" / "last.pt").unlink()
    before = (d / "run" / "model.pt").stat().st_mtime_ns
    outcome, _, _ = run(ctx, "rerun after deleting last.pt", "overwrite", ["train", "--config", str(cfg)], timeout=300)
    note(ctx, outcome, "model.pt " + ("replaced" if (d / "run" / "model.pt").stat().st_mtime_ns != before else "kept"))

    d = fresh(ctx, "stale")
    cfg = write_config(d / "c.yaml", p["data"], d / "run", DEEPLAB, steps=3, extra={"output": {"checkpoint_every": 1}})
    run(ctx, "setup: train 3 steps", "overwrite", ["train", "--config", str(cfg), "--set", "schedule.steps=1"],
        timeout=300, record=False)
    stale = d / "run" / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(os.urandom(1 << 20))
    outcome, _, _ = run(ctx, "stale checkpoint temporary + --resume", "overwrite",
                        ["train", "--config", str(cfg), "--set", "schedule.steps=1", "--resume"], timeout=300)
    note(ctx, outcome, f"temporary {'still there' if stale.exists() else 'removed'}")

    d = fresh(ctx, "remap")
    src = d / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 7 + i, np.uint8)).save(src / f"{i}.png")
    out = d / "out"
    run(ctx, "setup: remap cityscapes->mapillary", "overwrite",
        ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "mapillary", str(src), str(out)], record=False)
    first = (out / "0.png").read_bytes()
    outcome, _, _ = run(ctx, "remap rerun, other --to", "overwrite",
                        ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "ade20k", str(src), str(out)])
    note(ctx, outcome, "old translation's files " + ("left" if (out / "0.png").read_bytes() == first else "redone"))
    outcome, _, _ = run(ctx, "remap rerun, other --to, --overwrite", "overwrite",
                        ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "ade20k", "--overwrite", str(src),
                         str(out)])
    note(ctx, outcome, "files " + ("left" if (out / "0.png").read_bytes() == first else "redone"))
    time.sleep(0.01)
    Image.fromarray(np.full((8, 8), 26, np.uint8)).save(src / "1.png")  # car now
    before = (out / "1.png").read_bytes()
    outcome, _, _ = run(ctx, "remap rerun, a source changed", "overwrite",
                        ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "ade20k", str(src), str(out)])
    note(ctx, outcome, "changed file's output " + ("left" if (out / "1.png").read_bytes() == before else "redone"))
    inside = src / "remapped"
    for attempt in range(3):
        outcome, stdout, _ = run(ctx, f"remap DST inside SRC, run {attempt + 1}", "overwrite",
                                 ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "cityscapes", str(src),
                                  str(inside)])
        note(ctx, outcome, f"{sum(1 for _ in src.rglob('*.png'))} PNGs under SRC")
        if outcome.rc != 0:
            break

    d = fresh(ctx, "remap_concurrent")
    src = d / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(7, 34, (300, 300), dtype=np.uint8)).save(src / f"{i:03}.png")
    exe = [str(ctx.hierseg), "labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "mapillary", str(src),
           str(d / "out")]
    start = time.monotonic()
    procs = [subprocess.Popen(exe, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [proc.communicate(timeout=300) for proc in procs]
    codes = [proc.returncode for proc in procs]
    errs = [next((line for line in err.splitlines() if line.startswith("error:")), "") for _, err in outs]
    tb = [err.strip().splitlines()[-1] for _, err in outs if "Traceback" in err]
    outcome = Outcome("3 concurrent remaps, one DST", "overwrite", max(codes), round(time.monotonic() - start, 1), False,
                      bool(tb), 0, (" / ".join(e for e in errs if e) or (tb[0] if tb else ""))[:200],
                      f"exit codes {codes}; {len(list((d / 'out').glob('*.png')))} outputs")
    ctx.results.append(outcome)
    print(f"{outcome.case:38s} {outcome.summary()}", flush=True)



def interrupts(ctx: Context, p: dict[str, Path]) -> None:
    """SIGTERM to a two-worker remap once it has written some files: to the main process (``kill PID``) and to the
    whole process group (a service manager, a terminal's job control)."""
    import numpy as np
    from PIL import Image

    d = fresh(ctx, "remap_sigterm")
    src = d / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(300):
        Image.fromarray(rng.integers(7, 34, (384, 512), dtype=np.uint8)).save(src / f"{i:03}.png")
    for target in ("main process", "process group"):
        dst = d / f"out_{target.replace(' ', '_')}"
        args = [str(ctx.hierseg), "labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "mapillary",
                "--workers", "2"]
        start = time.monotonic()
        proc = subprocess.Popen([*args, str(src), str(dst)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True, cwd=ctx.work)
        while not (dst.is_dir() and len(list(dst.glob("*.png"))) >= 10) and proc.poll() is None:
            time.sleep(0.01)
        written = len(list(dst.glob("*.png")))
        if target == "main process":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
        hang = False
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            hang = True
            for pid in _session_members(proc.pid):
                os.kill(pid, signal.SIGKILL)
            _, err = proc.communicate()
        time.sleep(2.0)
        left = _session_members(proc.pid)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        lines = [line for line in err.splitlines() if line.strip()]
        outcome = Outcome(f"SIGTERM to a 2-worker remap ({target})", "interrupt", proc.returncode,
                          round(time.monotonic() - start, 1), hang, "Traceback" in err, len(left),
                          lines[-1] if lines else "",
                          f"{written} of 300 written when signalled; {err.count('Traceback')} tracebacks, "
                          f"{err.count('BrokenPipe')} BrokenPipe, {len(lines)} stderr lines")
        ctx.results.append(outcome)
        print(f"{outcome.case:38s} {outcome.summary()}", flush=True)


def flip_tensor_bytes(path: Path) -> None:
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(handle.read(2), "little"), int.from_bytes(handle.read(2), "little")
        start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        handle.seek(start)
        chunk = bytearray(handle.read(64))
        handle.seek(start)
        handle.write(bytes(b ^ 0x40 for b in chunk))


def wrong_answers(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "wrong")
    bad = d / "model.pt"
    shutil.copy(p["deeplab"], bad)
    flip_tensor_bytes(bad)
    run(ctx, "64 flipped bytes in model.pt (eval)", "wrong answer",
        ["eval", "--checkpoint", str(bad), "--dataset", "cityscapes", str(p["data"] / "cityscapes"), "--format", "json"])
    run(ctx, "eval on a dataset not trained on", "wrong answer",
        ["eval", "--checkpoint", str(p["dsspn"]), "--dataset", "mapillary", str(p["data"] / "mapillary"),
         "--format", "json"], timeout=120)
    run(ctx, "predict on a dataset not trained on", "wrong answer",
        ["predict", "--checkpoint", str(p["dsspn"]), "--dataset", "mapillary",
         str(p["data"] / "mapillary" / "validation" / "images"), "--out", str(d / "pred")], timeout=120)

    shipped = json.loads(subprocess.run([str(ctx.python), "-c", "from hierseg.taxonomy.tree import DEFAULT_ARTIFACT;"
                                         "print(DEFAULT_ARTIFACT.read_text())"], capture_output=True, text=True,
                                        cwd=ctx.work).stdout)
    variants = {"unknown format": lambda a: a.__setitem__("format", "something-else/9"),
                "non-integer ignore": lambda a: a["datasets"]["cityscapes"].__setitem__("ignore", "zero"),
                "labels naming an absent dataset": lambda a: a["concepts"][5]["labels"].__setitem__("kitti", [3]),
                "labels not a list": lambda a: a["concepts"][5]["labels"].__setitem__("ade20k", "148"),
                "label id a float": lambda a: a["concepts"][5]["labels"].__setitem__("ade20k", [148.5])}
    for name, change in variants.items():
        artifact = json.loads(json.dumps(shipped))
        change(artifact)
        path = d / f"{name.replace(' ', '_')}.json"
        path.write_text(json.dumps(artifact))
        run(ctx, f"artifact: {name} (validate)", "wrong answer", ["taxonomy", "validate", str(path), "--no-wordnet"])
        if name.startswith("label"):
            run(ctx, f"artifact: {name} (show)", "traceback", ["taxonomy", "show", str(path)])

    labels = d / "labels.csv"
    labels.write_text("id,name,synonyms,color,evaluated\n-3,thing,,1;2;3,1\n1,other,,4;5;6,1\n")
    folder = d / "generic"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "images" / "a.png")
    Image.fromarray(np.ones((8, 8), np.uint8)).save(folder / "masks" / "a.png")
    run(ctx, "negative id in a label CSV", "wrong answer",
        ["data", "check", str(folder), "--dataset", "mine", "--labels", str(labels)])
    out = d / "synth"
    run(ctx, "setup: synth 64", "wrong answer", ["data", "synth", "--dataset", "ade20k", "--out", str(out), "--n", "2",
                                                "--size", "64"], record=False)
    outcome, _, _ = run(ctx, "data synth again, other --size", "wrong answer",
                        ["data", "synth", "--dataset", "ade20k", "--out", str(out), "--n", "3", "--size", "96"])
    sizes = sorted({Image.open(f).size for f in out.rglob("*.jpg")})
    note(ctx, outcome, f"image sizes now {sizes}")


def tracebacks(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "tb")
    latin = "caf\xe9 na\xefve".encode("latin-1")
    tree = d / "tree.json"
    tree.write_bytes(b'{"concepts": [], "name": "' + latin + b'"}')
    run(ctx, "non-UTF-8 tree (validate)", "traceback", ["taxonomy", "validate", str(tree), "--no-wordnet"])
    config = d / "config.yaml"
    config.write_bytes(b"model:\n  name: " + latin + b"\n")
    run(ctx, "non-UTF-8 config (train)", "traceback", ["train", "--config", str(config)])
    specs = d / "specs"
    shutil.copytree(Path(subprocess.run([str(ctx.python), "-c", "from hierseg.taxonomy.specs import SPEC_DIR;"
                                         "print(SPEC_DIR)"], capture_output=True, text=True,
                                        cwd=ctx.work).stdout.strip()), specs)
    hierarchy = specs / "coco_stuff_hierarchy.csv"
    hierarchy.write_bytes(hierarchy.read_bytes() + b"\n" + latin + b",x\n")
    run(ctx, "non-UTF-8 spec CSV (taxonomy build)", "traceback",
        ["taxonomy", "build", "--specs", str(specs), "--out", str(d / "built" / "t.json")], timeout=120)
    labels = d / "labels.csv"
    labels.write_bytes(b"id,name,synonyms,color,evaluated\n1," + latin + b",,1;2;3,1\n")
    run(ctx, "non-UTF-8 label CSV (data check)", "traceback",
        ["data", "check", str(p["data"] / "cityscapes"), "--dataset", "mine", "--labels", str(labels)])
    rundir = d / "run"
    rundir.mkdir()
    (rundir / "metrics.jsonl").write_bytes(b'{"stage": "' + latin + b'"}\n')
    run(ctx, "non-UTF-8 metrics.jsonl (plot)", "traceback", ["plot", str(rundir)])

    # outputs that cannot be written
    a_file = d / "a_file"
    a_file.write_text("x")
    a_dir = d / "a_dir"
    a_dir.mkdir()
    targets = {"is a directory": a_dir, "under a file": a_file / "x"}
    if "ro" in p:
        targets["read-only FS"] = p["ro"] / "x"
    if "full" in p:
        targets["full FS"] = p["full"] / "x"
    data = p["data"]
    cfg_model = DEEPLAB
    for fault, target in targets.items():
        file_target = target if fault == "is a directory" else target.with_suffix(".out")
        dir_target = a_file if fault == "is a directory" else target  # folder outputs: an existing file instead
        commands = {
            "taxonomy build --out": ["taxonomy", "build", "--out", str(file_target), "--label-maps", str(d / "lm")],
            "labels export --out": ["labels", "export", "--dataset", "cityscapes", "--out", str(file_target)],
            "taxonomy export --out": ["taxonomy", "export", "--out", str(file_target)],
            "taxonomy draw --out": ["taxonomy", "draw", "--dataset", "cityscapes", "--out",
                                    str(file_target if fault == "is a directory" else file_target.with_suffix(".svg"))],
            "plot --out": ["plot", str(p["deeplab"].parent), "--out",
                           str(file_target if fault == "is a directory" else file_target.with_suffix(".png"))],
            "eval --out": ["eval", "--checkpoint", str(p["deeplab"]), "--dataset", "cityscapes", str(data / "cityscapes"),
                           "--out", str(file_target if fault == "is a directory" else file_target.with_suffix(".json"))],
            "data synth --out": ["data", "synth", "--dataset", "ade20k", "--n", "1", "--size", "32", "--out",
                                 str(dir_target)],
            "predict --out": ["predict", "--checkpoint", str(p["deeplab"]), "--dataset", "cityscapes",
                              str(data / "cityscapes" / "leftImg8bit" / "val"), "--out", str(dir_target)],
            "labels remap DST": ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "mapillary",
                                 str(data / "cityscapes" / "gtFine"), str(dir_target)],
        }
        cfg = write_config(d / f"cfg_{fault.replace(' ', '_')}.yaml", data, dir_target, cfg_model, steps=1)
        commands["train output.dir"] = ["train", "--config", str(cfg)]
        for name, args in commands.items():
            run(ctx, f"{name}: {fault}", "traceback", args, timeout=180)

    for value in ("-8", "0", "abc", "1e9"):
        run(ctx, f"models info m={value}", "traceback", ["models", "info", "dsspn_resnet18", "--set", f"m={value}"])
    run(ctx, "models info output_stride=7", "traceback",
        ["models", "info", "deeplab_resnet18", "--set", "num_classes=19", "--set", "output_stride=7"])
    run(ctx, "models info num_classes=-1", "traceback", ["models", "info", "deeplab_resnet18", "--set", "num_classes=-1"])
    cfg = write_config(d / "m.yaml", data, d / "mrun", DSSPN, steps=1)
    run(ctx, "train model.kwargs.m=-8", "traceback", ["train", "--config", str(cfg), "--set", "model.kwargs.m=-8"])
    run(ctx, "train model.kwargs.m=abc", "traceback", ["train", "--config", str(cfg), "--set", "model.kwargs.m=abc"])
    run(ctx, "train run.seed=2**70", "traceback", ["train", "--config", str(cfg), "--set", f"run.seed={2 ** 70}"])
    run(ctx, "data synth --seed 2**70", "traceback", ["data", "synth", "--dataset", "ade20k", "--out", str(d / "s"),
                                                     "--n", "1", "--size", "32", "--seed", str(2 ** 70)])
    run(ctx, "labels stats --seed -1", "traceback",
        ["labels", "stats", *ctx.glob, "--dataset", "cityscapes", "--seed", "-1", str(data / "cityscapes" / "gtFine")])

    if "ro" in p:
        out = d / "build_ro"
        run(ctx, "taxonomy build, read-only label maps", "traceback",
            ["taxonomy", "build", "--out", str(out / "t.json"), "--label-maps", str(p["ro"] / "maps")], timeout=120)
        note(ctx, ctx.results[-1], f"tree {'written' if (out / 't.json').exists() else 'not written'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hierseg", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--only", nargs="*",
                        default=["hangs", "overwrites", "interrupts", "wrong_answers", "tracebacks"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    hierseg = args.hierseg.absolute()
    ctx = Context(hierseg, hierseg.parent / "python", args.work.absolute())
    usage = subprocess.run([str(hierseg), "labels", "remap", "--help"], capture_output=True, text=True).stdout
    ctx.glob = ["--glob", "*.png"] if "--glob" in usage else []
    ctx.work.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unmount on the way out
    try:
        paths = setup(ctx)
        for name in args.only:
            print(f"== {name}", flush=True)
            globals()[name](ctx, paths)
    finally:
        teardown(ctx)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in ctx.results], indent=1))


if __name__ == "__main__":
    sys.exit(main())
