"""Distributed training on this CPU (gloo): N ranks compute what one device computes on the whole batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from stylefuse.training.module import StyleGAN2Module
from tests.helpers import REPO

BATCH = 8


def make_module(batch_gpu: int) -> StyleGAN2Module:
    torch.manual_seed(0)
    return StyleGAN2Module(
        # No per-pixel noise: its draws come from each rank's own RNG, everything else is shared.
        G_kwargs=dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                      mapping_kwargs=dict(num_layers=2),
                      synthesis_kwargs=dict(channel_base=128, channel_max=16, use_noise=False)),
        D_kwargs=dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                      epilogue_kwargs=dict(mbstd_group_size=4)),
        loss_kwargs=dict(r1_gamma=1.0, style_mixing_prob=0.9, pl_weight=2.0),
        optim_kwargs=dict(lr=0.0025, betas=[0, 0.99], eps=1e-8),
        batch_size=BATCH, batch_gpu=batch_gpu, total_kimg=1, ema_kimg=0.01, ema_rampup=None,
        fp32_channels_last=True)  # the layout train.py uses on CPU


def one_iteration(rank: int, world: int, out: str) -> None:
    module = make_module(batch_gpu=BATCH // world)
    real = torch.rand([BATCH, 3, 16, 16], generator=torch.Generator().manual_seed(1)) * 2 - 1
    opt_G, opt_D = module.configure_optimizers()
    grads: dict[str, dict[str, torch.Tensor]] = {}
    phases = iter(["Gmain", "Greg", "Dmain", "Dreg"])
    for opt, net in [(opt_G, module.G), (opt_D, module.D)]:
        def recording_step(step=opt.step, net=net):  # the reduced, cleaned gradients each optimizer step uses
            grads[next(phases)] = {n: p.grad.clone() for n, p in net.named_parameters()}
            return step()
        opt.step = recording_step
    inputs = {phase.name: module.sampler.draw(phase.name, module.G, BATCH, BATCH // world, rank, world,
                                              module.label_bank, module.loss.style_mixing_prob, torch.device("cpu"))
              for phase in module.phases}
    # The distributed sampler hands rank r the global samples r, r + world, ...
    module.run_iteration(real[rank::world], torch.zeros([BATCH // world, 0]), inputs, {"G": opt_G, "D": opt_D})
    torch.save({"state": module.state_dict(), "grads": grads, "pl_mean": float(module.loss.pl_mean)}, out)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        one_iteration(rank, world, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_ranks_of_4_equal_one_device_of_8(tmp_path):
    one_iteration(0, 1, str(tmp_path / "single.pt"))
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    smallest_grad: dict[str, torch.Tensor] = {}  # per weight, the smallest |gradient| over the phases
    for phase, expected in single["grads"].items():
        for name, value in expected.items():
            for rank_state in ranks:
                got = rank_state["grads"][phase][name]
                assert (got - value).abs().max() <= 1e-5 * value.abs().max().clamp(min=1e-12), (phase, name)
            net = "G." if phase.startswith("G") else "D."
            smallest_grad[net + name] = torch.minimum(smallest_grad.get(net + name, value.abs()), value.abs())
    for name, value in single["state"].items():
        if name.startswith("ada."):
            continue
        for rank_state in ranks:
            other = rank_state["state"][name]
            if not value.is_floating_point():
                assert torch.equal(other, value), name
            else:
                # Adam's first step is ~lr * sign(grad): a gradient within float error of 0 may flip.
                grad = smallest_grad.get(name.replace("G_ema.", "G.", 1))
                trusted = grad >= 1e-6 if grad is not None else torch.ones_like(value, dtype=torch.bool)
                torch.testing.assert_close(other[trusted], value[trusted], atol=1e-5, rtol=0, msg=name)
    torch.testing.assert_close(ranks[0]["state"]["G.mapping.w_avg"], ranks[1]["state"]["G.mapping.w_avg"])
    assert abs(ranks[0]["pl_mean"] - single["pl_mean"]) < 1e-7 and ranks[0]["pl_mean"] == ranks[1]["pl_mean"]


@pytest.mark.slow
def test_lightning_ddp_run_finishes_cleanly(tmp_path):
    """`trainer=ddp_cpu`: two gloo processes through Lightning, snapshots check that ranks stay identical."""
    cmd = [sys.executable, str(REPO / "train.py"), "experiment=debug", "trainer=ddp_cpu", "logger=none",
           "total_kimg=0.032", "snapshot_kimg=0.016", "dataset.resolution=16", "model.channel_base=256",
           "model.channel_max=16", "model.z_dim=16", "model.w_dim=16", f"hydra.run.dir={tmp_path}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Training finished at 0.032 kimg" in done.stdout
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(ckpt["state_dict"]["cur_nimg"]) == 32
