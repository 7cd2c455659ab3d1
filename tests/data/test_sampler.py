"""Multi-dataset batch sampler: one dataset per batch, deterministic, disjoint DDP shares, resumable."""

from __future__ import annotations

import pytest

from hierseg.data.sampler import MultiDatasetBatchSampler
from hierseg.taxonomy import HiersegError

SIZES = [10, 25, 7]


def dataset_of(index: int) -> int:
    return 0 if index < 10 else 1 if index < 35 else 2


def test_every_batch_comes_from_one_dataset_and_an_epoch_covers_each_once():
    sampler = MultiDatasetBatchSampler(SIZES, batch_size=3, seed=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10 // 3 + 25 // 3 + 7 // 3
    for batch in batches:
        assert len(batch) == 3 and len({dataset_of(i) for i in batch}) == 1
        assert sampler.dataset_of(batch) == dataset_of(batch[0])
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))  # no sample twice in an epoch
    assert {dataset_of(b[0]) for b in batches[:4]} != {dataset_of(batches[0][0])}  # datasets are interleaved


def test_deterministic_for_a_seed_and_new_each_epoch():
    a, b = MultiDatasetBatchSampler(SIZES, 3, seed=7), MultiDatasetBatchSampler(SIZES, 3, seed=7)
    assert list(a) == list(b)
    assert list(a) != list(MultiDatasetBatchSampler(SIZES, 3, seed=8))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(map(sorted, list(a))) != sorted(map(sorted, first))


def test_two_ranks_get_disjoint_shares_of_equal_length():
    ranks = [MultiDatasetBatchSampler(SIZES, 3, seed=1, rank=r, world_size=2) for r in range(2)]
    shares = [list(s) for s in ranks]
    assert len(shares[0]) == len(shares[1]) == len(ranks[0])
    seen = [{i for b in share for i in b} for share in shares]
    assert not seen[0] & seen[1]
    single = MultiDatasetBatchSampler(SIZES, 3, seed=1)
    assert len(ranks[0]) == len(single) // 2


def test_resume_mid_epoch_gives_the_same_sequence():
    full = MultiDatasetBatchSampler(SIZES, 3, seed=2, rank=1, world_size=2)
    full.set_epoch(3)
    expected = list(full)
    resumed = MultiDatasetBatchSampler(SIZES, 3, seed=2, rank=1, world_size=2)
    resumed.resume(epoch=3, step=2)
    assert list(resumed) == expected[2:]
    with pytest.raises(HiersegError, match="cannot resume at step 99"):
        resumed.resume(epoch=3, step=99)


def test_weights_set_each_datasets_share_of_batches():
    sampler = MultiDatasetBatchSampler([10, 100], 2, weights=[1, 1], seed=0, steps_per_epoch=40)
    assert sampler.batches_per_dataset == [20, 20]  # the small dataset is oversampled: 4 permutations of 5 batches
    counts = [0, 0]
    for batch in sampler:
        counts[sampler.dataset_of(batch)] += 1
        assert len(set(batch)) == len(batch)
    assert counts == [20, 20]


def test_bad_arguments():
    with pytest.raises(HiersegError, match="at least batch_size=4"):
        MultiDatasetBatchSampler([3, 10], 4)
    with pytest.raises(HiersegError, match="weights"):
        MultiDatasetBatchSampler([10, 10], 2, weights=[1])
    with pytest.raises(HiersegError, match="rank 2"):
        MultiDatasetBatchSampler([10], 2, rank=2, world_size=2)


def test_loader_batches_real_files_one_dataset_at_a_time(tmp_path):
    from hierseg.data.loader import multi_dataset_loader
    from hierseg.data.readers import official
    from hierseg.data.transforms import TrainTransform
    from tests.data.test_readers import put_image, put_label

    for i in range(4):
        put_image(tmp_path / f"ade/images/training/ADE_train_{i:08d}.jpg", seed=i)
        put_label(tmp_path / f"ade/annotations/training/ADE_train_{i:08d}.png", [1, 2])
        put_image(tmp_path / f"coco/images/train2017/{i:012d}.jpg", seed=i)
        put_label(tmp_path / f"coco/annotations/train2017/{i:012d}.png", [0, 255])
    ade = official("ade20k", tmp_path / "ade", "training", transform=TrainTransform(crop=16, ignore=0))
    coco = official("coco_stuff", tmp_path / "coco", "train2017", transform=TrainTransform(crop=16, ignore=255))
    loader, sampler = multi_dataset_loader([ade, coco], batch_size=2, workers=0)
    batches = list(loader)
    assert len(batches) == 4 and sorted(b["dataset"] for b in batches) == ["ade20k"] * 2 + ["coco_stuff"] * 2
    for batch in batches:
        assert batch["image"].shape == (2, 3, 16, 16) and batch["label"].shape == (2, 16, 16)
        allowed = {0, 1, 2} if batch["dataset"] == "ade20k" else {0, 255}
        assert set(batch["label"].unique().tolist()) <= allowed


def test_per_dataset_batch_sizes_cover_each_sample_once_and_shard_exactly():
    sizes, batch_sizes = [10, 25, 7], [2, 4, 3]
    single = MultiDatasetBatchSampler(sizes, batch_sizes, seed=3)
    batches = list(single)
    assert len(batches) == len(single) == 10 // 2 + 25 // 4 + 7 // 3
    for batch in batches:
        assert len(batch) == batch_sizes[dataset_of(batch[0])] and len({dataset_of(i) for i in batch}) == 1
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))
    ranks = [MultiDatasetBatchSampler(sizes, batch_sizes, seed=3, rank=r, world_size=2) for r in range(2)]
    shares = [list(s) for s in ranks]
    assert len(shares[0]) == len(shares[1]) == len(single) // 2
    assert shares[0] + shares[1] != [] and not {i for b in shares[0] for i in b} & {i for b in shares[1] for i in b}
    assert sorted(map(tuple, shares[0] + shares[1])) == sorted(map(tuple, single.epoch_batches(0)[: 2 * len(shares[0])]))
    resumed = MultiDatasetBatchSampler(sizes, batch_sizes, seed=3, rank=1, world_size=2)
    resumed.resume(epoch=0, step=3)
    assert list(resumed) == shares[1][3:]
    with pytest.raises(HiersegError, match="at least batch_size=8 samples"):
        MultiDatasetBatchSampler([10, 7], [2, 8])
    with pytest.raises(HiersegError, match="2 batch sizes for 3 datasets"):
        MultiDatasetBatchSampler(sizes, [2, 3])


def test_steps_per_epoch_keeps_each_datasets_rate_with_its_batch_size():
    # 100 samples in batches of 2 and 100 in batches of 4: the second needs half as many batches per pass
    sampler = MultiDatasetBatchSampler([100, 100], [2, 4], seed=0, steps_per_epoch=30)
    assert sampler.batches_per_dataset == [20, 10]
    assert MultiDatasetBatchSampler([30, 10], 2, steps_per_epoch=8).batches_per_dataset == [6, 2]
