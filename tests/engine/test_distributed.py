"""DDP on the CPU (gloo, two spawned processes set up as torchrun would) against one process that accumulates the
same two batches per step; and no torch.distributed call at all in a single process.

The model (``TwoHeads``) has no batch norm: per-process BN statistics would make the two runs differ by design.
It has one head per dataset, so in a joint step the two ranks often train different heads and each leaves the
other's head unused, which DDP must tolerate (``find_unused_parameters``, as DSSPN's per-dataset sub-graphs need).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hierseg.engine import distributed
from hierseg.engine.checkpoint import read_checkpoint
from hierseg.engine.logs import read_metrics
from hierseg.engine.train import train
from tests.engine.test_train import DATASETS, TwoHeads, make_config, write_synth

STEPS = 4


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return write_synth(tmp_path_factory.mktemp("synth"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoDropout(TwoHeads):
    def __init__(self) -> None:
        super().__init__()
        self.backbone[2].p = 0.0  # dropout masks differ per rank by design


def _rank(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    config = make_config(Path(root), Path(out), DATASETS, schedule={"steps": STEPS})
    records: list[dict] = []
    train(config, model_fn=lambda **kw: NoDropout(), on_step=records.append)
    Path(out, f"rank{rank}.json").write_text(json.dumps(records))


def test_two_process_ddp_matches_one_process_on_the_same_global_batch(synth_root, tmp_path):
    mp.spawn(_rank, args=(2, free_port(), str(synth_root), str(tmp_path / "ddp")), nprocs=2, join=True)
    single = make_config(synth_root, tmp_path / "single", DATASETS, schedule={"steps": STEPS},
                         optim={"accumulate": 2})  # batches 2t and 2t+1 of the sequence the two ranks split
    train(single, model_fn=lambda **kw: NoDropout())

    ddp, one = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "single")
    assert len(ddp) == len(one) == STEPS  # rank 0 alone wrote the log (two writers would double it)
    for a, b in zip(ddp, one, strict=True):
        assert a["images"] == b["images"] == 4
        assert a["datasets"].keys() == b["datasets"].keys()
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    assert any(len(r["datasets"]) == 2 for r in ddp)  # some step had a different dataset on each rank
    # every rank saw the reduced metrics of the whole step
    rank0, rank1 = (json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert [r["loss"] for r in rank0] == [r["loss"] for r in rank1]
    weights_ddp = read_checkpoint(tmp_path / "ddp" / "model.pt")["state_dict"]
    weights_one = read_checkpoint(tmp_path / "single" / "model.pt")["state_dict"]
    for key, value in weights_one.items():
        torch.testing.assert_close(weights_ddp[key], value, atol=1e-5, rtol=1e-4)
    assert read_checkpoint(tmp_path / "ddp" / "last.pt")["training"]["world_size"] == 2
    assert len(read_checkpoint(tmp_path / "ddp" / "last.pt")["training"]["rng"]) == 2  # one RNG state per rank


def test_a_single_process_never_calls_torch_distributed(synth_root, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.distributed was called without a process group")

    for name in ("init_process_group", "barrier", "all_gather_object", "broadcast_object_list", "all_reduce",
                 "destroy_process_group", "get_rank", "get_world_size"):
        monkeypatch.setattr(dist, name, forbidden)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = distributed.setup("cpu")
    assert (info.rank, info.world_size, info.owns_group) == (0, 1, False)
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object(3) == 3
    distributed.barrier()
    train(make_config(synth_root, tmp_path / "run", DATASETS, schedule={"steps": 2}),
          model_fn=lambda **kw: NoDropout())
    assert len(read_metrics(tmp_path / "run")) == 2
