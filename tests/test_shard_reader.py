import datetime
import os
import socket
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.helpers import batches_per_epoch, make_shards, urls_of
from wsfm.shard_reader import ShardReader, shard_batches
from wsfm.shards import read_manifest


def rows(batches):
    return [tuple(row.tolist()) for b in batches for row in b]


def test_endless_reader_splits_by_rank(tmp_path):
    arrays = make_shards(tmp_path, [50, 13, 29])  # uneven and odd in number
    seen = []
    for rank in range(2):
        stream = shard_batches(urls_of(tmp_path), 8, rank=rank, world_size=2, seed=0,
                               shuffle_buffer=16)
        batches = [next(stream) for _ in range(30)]  # more than the data: resampled, no end
        assert all(b.shape == (8, 3) and b.dtype == torch.float32 for b in batches)
        seen.append(set(rows(batches)))
    rank0 = {tuple(r.tolist()) for i in (0, 2) for r in arrays[i]}
    rank1 = {tuple(r.tolist()) for r in arrays[1]}
    assert seen[0] <= rank0 and seen[1] <= rank1  # shard-level split: no overlap
    assert seen[0] == rank0  # 240 draws from 79 rows in 5-row blocks reach every row


def test_epochs_have_the_same_length_on_every_rank(tmp_path):
    make_shards(tmp_path, [50, 13, 29])
    urls = urls_of(tmp_path)
    n = batches_per_epoch(read_manifest(tmp_path), batch_size=8, world_size=2)
    assert n == 92 // 16
    lengths = [len(list(shard_batches(urls, 8, rank=r, world_size=2, epoch_batches=n)))
               for r in range(2)]
    assert lengths == [n, n]  # rank 1 holds 13 rows, rank 0 holds 79: same number of batches
    assert len(ShardReader(urls, 8, epoch_batches=n)) == n


def test_reader_is_seeded_and_shuffles(tmp_path):
    arrays = make_shards(tmp_path, [200])
    urls = urls_of(tmp_path)
    reader = ShardReader(urls, 10, seed=3, shuffle_buffer=100, epoch_batches=5)
    first = rows(reader)
    assert first == rows(ShardReader(urls, 10, seed=3, shuffle_buffer=100, epoch_batches=5))
    reader.set_epoch(1)
    assert rows(reader) != first
    stored = [tuple(r.tolist()) for r in arrays[0]]
    positions = [stored.index(r) for r in first]
    assert positions != sorted(positions)  # not storage order
    assert len(set(first)) == len(first)  # drawn without replacement from the buffer


def test_reader_yields_aligned_indices(tmp_path):
    make_shards(tmp_path, [60, 21], with_index=True)
    for x, idx in shard_batches(urls_of(tmp_path), 16, epoch_batches=6, with_index=True):
        assert x.shape == (16, 3) and idx.shape == (16,) and idx.dtype == torch.int64
        assert torch.equal(idx, torch.round(x[:, 0] * 1000).long())


def test_index_is_refused_for_shards_without_it(tmp_path):
    make_shards(tmp_path, [20])
    with pytest.raises(ValueError, match="idx.npy"):
        next(shard_batches(urls_of(tmp_path), 4, with_index=True))


def test_dataloader_workers_split_the_rank_and_share_the_epoch(tmp_path):
    arrays = make_shards(tmp_path, [30, 30, 30, 30])
    reader = ShardReader(urls_of(tmp_path), 5, rank=1, world_size=2, epoch_batches=7)
    loader = torch.utils.data.DataLoader(reader, batch_size=None, num_workers=2)
    batches = list(loader)
    assert len(batches) == 7  # the rank's epoch, however many workers read it
    # Rank 1 holds shards 1 and 3; worker 0 reads shard 1, worker 1 shard 3: batches
    # alternate between workers, and no batch mixes the two.
    owner = {tuple(r.tolist()): i for i in (1, 3) for r in arrays[i]}
    sources = [{owner[r] for r in rows([b])} for b in batches]
    assert all(len(s) == 1 for s in sources)
    assert [s.pop() for s in sources] == [1, 3, 1, 3, 1, 3, 1]


def _rank_main(rank, world, port, urls, epoch_batches, result_dir):
    """A real 2-process gloo run: every batch is an all_reduce, so a short rank would hang."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    steps = 0
    for epoch in range(2):
        reader = ShardReader(urls, 8, rank=rank, world_size=world, epoch_batches=epoch_batches)
        reader.set_epoch(epoch)
        for batch in reader:
            total = batch.sum()
            dist.all_reduce(total)
            steps += 1
    dist.barrier()
    dist.destroy_process_group()
    with open(os.path.join(result_dir, f"rank{rank}"), "w") as fh:
        fh.write(str(steps))


def test_two_ranks_odd_shards_finish_together(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_shards(data, [70, 9, 33])  # 3 shards, 2 ranks: rank 0 reads 103 rows, rank 1 reads 9
    urls = urls_of(data)
    n = batches_per_epoch(read_manifest(data), 8, 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.start_processes(_rank_main, args=(2, port, urls, n, str(tmp_path)), nprocs=2,
                           join=True, start_method="fork")
    assert [int((tmp_path / f"rank{r}").read_text()) for r in range(2)] == [2 * n, 2 * n]
