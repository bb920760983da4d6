"""The endless, resumable image stream: epochs, rank shards, restarts at any position."""

from __future__ import annotations

import itertools

from stylefuse.data.sampler import InfiniteSampler


def take(sampler: InfiniteSampler, n: int) -> list[int]:
    return list(itertools.islice(sampler, n))


def test_every_image_once_per_epoch_in_a_new_order():
    stream = take(InfiniteSampler(10, seed=5), 30)
    epochs = [stream[i:i + 10] for i in (0, 10, 20)]
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    assert take(InfiniteSampler(10, seed=5), 30) == stream and take(InfiniteSampler(10, seed=6), 30) != stream


def test_ranks_interleave_into_the_single_device_stream_and_resume_anywhere():
    stream = take(InfiniteSampler(7, seed=1), 48)
    ranks = [take(InfiniteSampler(7, rank=r, world_size=3, seed=1), 16) for r in range(3)]
    assert [ranks[i % 3][i // 3] for i in range(48)] == stream  # global position i is on rank i % 3
    # Restarted at a position (a multiple of the global batch, as the data module's checkpoint has it), across epochs.
    for start in (6, 12, 33):
        assert take(InfiniteSampler(7, seed=1, start=start), 48 - start) == stream[start:]
        resumed = [take(InfiniteSampler(7, rank=r, world_size=3, seed=1, start=start), (48 - start) // 3)
                   for r in range(3)]
        assert [resumed[i % 3][i // 3] for i in range(48 - start)] == stream[start:]
