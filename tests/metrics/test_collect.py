"""Feature collection: generated images with dataset labels, the real-statistics cache, several ranks."""

from __future__ import annotations

import os

import numpy as np
import torch

from stylefuse.metrics import calc_metric
from stylefuse.metrics.collect import dataset_features, generator_features
from tests.metrics.stand_ins import MemoryDataset, make_opts, random_images


def test_generated_images_use_dataset_labels_and_official_uint8(tiny_G) -> None:
    labels = np.eye(3, dtype=np.float32)[np.arange(30) % 3]
    dataset = MemoryDataset(random_images(30), labels=labels)
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            seen.append(images)
            return images.float().mean([2, 3])

    G = tiny_G(c_dim=3, seed=0).eval()
    calls = []
    G.register_forward_hook(lambda module, args, out: calls.append((args, out)))
    opts = make_opts(dataset, G=G, detectors={"inception": Recorder()}, num_gen=20)
    generator_features(opts, "inception", 20, capture_all=True)
    assert all(x.dtype == torch.uint8 and x.shape == (16, 3, 32, 32) for x in seen) and len(seen) == 2
    assert len(calls) == 8  # batch_size 16 / batch_gen 4, two batches
    (z, c), out = calls[0]
    assert z.shape == (4, 32) and c.shape == (4, 3) and set(c.sum(1).tolist()) == {1.0}
    torch.testing.assert_close(seen[0][:4], (out * 127.5 + 128).clamp(0, 255).to(torch.uint8))


def test_real_statistics_are_cached_per_options(tmp_path) -> None:
    dataset = MemoryDataset(random_images(40), name="cats")
    opts = make_opts(dataset, num_gen=16, cache_dir=str(tmp_path))
    first = calc_metric("fid50k_full", opts)
    assert dataset.reads == 40
    files = sorted(os.listdir(tmp_path / "gan-metrics"))
    assert len(files) == 1 and files[0].startswith("cats-random-") and files[0].endswith(".pt")
    state = torch.load(tmp_path / "gan-metrics" / files[0], weights_only=True)
    assert state["num_items"] == 40 and state["raw_cov"].dtype == torch.float64

    second = calc_metric("fid50k_full", opts)
    assert dataset.reads == 40  # statistics came from the file
    assert second["results"] == first["results"]

    calc_metric("fid50k_full", make_opts(dataset, num_gen=16, cache_dir=str(tmp_path), max_real=30))
    assert dataset.reads == 70 and len(os.listdir(tmp_path / "gan-metrics")) == 2


def _sharded_worker(rank: int, tmp: str) -> None:
    torch.set_num_threads(1)  # forked like DataLoader workers, and like them single-threaded
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=2)
    try:
        opts = make_opts(MemoryDataset(random_images(37)), num_gpus=2, rank=rank, batch_size=8,
                         cache_dir=f"{tmp}/cache", num_gen=20)
        real = dataset_features(opts, "inception", None, capture_all=True, capture_mean_cov=True)
        gen = generator_features(opts, "inception", 20, capture_all=True)
        fid = calc_metric("fid50k_full", opts)["results"]["fid20_full"]
        fid_cached = calc_metric("fid50k_full", opts)["results"]["fid20_full"]
        torch.save(dict(real=real.get_all(), mean_cov=real.get_mean_cov(), gen=gen.get_all(), fid=fid,
                        fid_cached=fid_cached), f"{tmp}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_sharded_features_match_one_process(tmp_path) -> None:
    # fork: the ranks start at once instead of importing torch and Lightning again (spawn takes 10+ s here).
    torch.multiprocessing.start_processes(_sharded_worker, args=(str(tmp_path),), nprocs=2, start_method="fork")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    single = dataset_features(make_opts(MemoryDataset(random_images(37)), batch_size=8), "inception", None,
                              capture_all=True, capture_mean_cov=True)
    for out in ranks:
        torch.testing.assert_close(out["real"], single.get_all())  # same rows in the same order
        np.testing.assert_allclose(out["mean_cov"][0], single.get_mean_cov()[0], rtol=1e-12)
        np.testing.assert_allclose(out["mean_cov"][1], single.get_mean_cov()[1], rtol=1e-9, atol=1e-12)
        assert out["gen"].shape == (20, 8) and out["fid"] == out["fid_cached"] == ranks[0]["fid"]
    torch.testing.assert_close(ranks[0]["gen"], ranks[1]["gen"])
    # Ranks draw different latents: the gathered rows interleave two different streams.
    assert not torch.equal(ranks[0]["gen"][0::2], ranks[0]["gen"][1::2])
    assert len(os.listdir(tmp_path / "cache" / "gan-metrics")) == 2  # all rows + mean/cov, and FID's mean/cov
