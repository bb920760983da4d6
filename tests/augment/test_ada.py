"""The ADA heuristic: p moves at the scheduled rate, clamps at 0, counts every real logit, checkpoints; configs."""

from __future__ import annotations

import pytest
import torch

from stylefuse.augment import AdaController, AugmentPipe


def make_pipe(p: float) -> AugmentPipe:
    pipe = AugmentPipe(xflip=1)
    pipe.p.fill_(p)
    return pipe


def run(controller: AdaController, pipe: AugmentPipe | None, logits: torch.Tensor, iterations: range) -> list[float]:
    """Feeds the same real logits to the main and the R1 phase every iteration; returns p after each."""
    history = []
    for batch_idx in iterations:
        controller.accumulate(logits)      # Dmain
        controller.accumulate(logits[:2])  # Dreg
        controller.update(pipe, batch_idx)
        history.append(pipe.p.item())
    return history


def test_p_rises_at_scheduled_rate():
    controller = AdaController(target=0.6, interval=4, kimg=1, batch_size=8)
    step = 8 * 4 / 1000
    assert controller.adjust_step == pytest.approx(step)
    pipe = make_pipe(0.0)
    history = run(controller, pipe, torch.ones(8, 1), range(1, 13))  # r_t = 1 > target.
    expected = [step * (i // 4) for i in range(1, 13)]  # Only on iterations 4, 8, 12.
    assert history == pytest.approx(expected, abs=1e-7)
    assert controller.rt.item() == 1


def test_p_falls_and_clamps_at_zero():
    controller = AdaController(target=0.6, interval=2, kimg=0.5, batch_size=4)  # Step 0.016.
    pipe = make_pipe(0.04)
    history = run(controller, pipe, -torch.ones(4, 1), range(1, 9))
    assert history == pytest.approx([0.04, 0.024, 0.024, 0.008, 0.008, 0.0, 0.0, 0.0], abs=1e-7)


def test_no_upper_bound_and_official_step():
    controller = AdaController(batch_size=64)  # Official defaults: target 0.6, interval 4, 500 kimg.
    assert controller.adjust_step == pytest.approx(0.000512)
    pipe = make_pipe(0.9995)
    run(controller, pipe, torch.ones(64, 1), range(1, 9))
    assert pipe.p.item() == pytest.approx(0.9995 + 2 * 0.000512, abs=1e-6)


def test_rt_counts_main_and_reg_logits_and_ranks():
    controller = AdaController(target=0.5, interval=1, batch_size=4)
    controller.accumulate(torch.tensor([[2.0], [0.5], [-1.0], [3.0]]))  # Dmain: signs sum 2 over 4.
    controller.accumulate(torch.tensor([[-0.1], [0.0]]))               # Dreg: signs sum -1 over 2 (0 counts).
    calls = []

    def reduce(stats: torch.Tensor) -> torch.Tensor:  # A second rank that saw sum 5 over 6.
        calls.append(stats.clone())
        return stats + torch.tensor([5.0, 6.0])

    pipe = make_pipe(0.25)
    rt = controller.update(pipe, batch_idx=1, reduce=reduce)
    assert len(calls) == 1 and calls[0].tolist() == [1.0, 6.0]
    assert rt.item() == pytest.approx(6 / 12)
    assert pipe.p.item() == 0.25  # r_t == target: sign 0, no change.
    assert (controller.sign_sum.item(), controller.sign_count.item()) == (0, 0)


def test_reduce_only_on_adjustment_iterations_and_previous_rt_kept():
    controller = AdaController(interval=4, kimg=1, batch_size=8)
    pipe = make_pipe(0.5)
    calls = []

    def reduce(stats: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return stats

    assert torch.isnan(controller.update(pipe, 4, reduce))  # Nothing recorded yet: no r_t, p stays.
    assert pipe.p.item() == 0.5
    controller.accumulate(torch.ones(8, 1))
    for batch_idx in range(5, 9):
        rt = controller.update(pipe, batch_idx, reduce)
    assert len(calls) == 2 and rt.item() == 1
    assert pipe.p.item() == pytest.approx(0.5 + 0.032)
    controller.update(pipe, 12, reduce)  # Nothing recorded: keep r_t = 1, so p keeps rising.
    assert controller.rt.item() == 1 and pipe.p.item() == pytest.approx(0.5 + 0.064)


def test_fixed_and_noaug_keep_p_but_measure_rt():
    fixed = AdaController(mode="fixed", interval=1, batch_size=8)
    pipe = make_pipe(0.3)
    fixed.accumulate(torch.ones(8, 1))
    assert fixed.update(pipe, 1).item() == 1 and pipe.p.item() == pytest.approx(0.3)
    noaug = AdaController(mode="noaug", interval=1, batch_size=8)
    noaug.accumulate(-torch.ones(8, 1))
    assert noaug.update(None, 1).item() == -1


def test_state_round_trips_through_state_dict():
    # Like the LightningModule: the pipe (with p) and the controller are submodules of one module.
    def make() -> torch.nn.Module:
        return torch.nn.ModuleDict({"augment_pipe": make_pipe(0.0), "ada": AdaController(interval=4, batch_size=8)})

    trained = make()
    run(trained["ada"], trained["augment_pipe"], torch.ones(8, 1), range(1, 7))  # Mid-interval: counters non-zero.
    state = trained.state_dict()
    assert {"augment_pipe.p", "ada.sign_sum", "ada.sign_count", "ada.rt"} <= set(state)
    resumed = make()
    resumed.load_state_dict(state)
    assert trained["augment_pipe"].p.item() > 0
    assert resumed["augment_pipe"].p.item() == trained["augment_pipe"].p.item()
    for name in ("sign_sum", "sign_count", "rt"):
        assert torch.equal(getattr(resumed["ada"], name), getattr(trained["ada"], name))
    # Both continue identically.
    for module in (trained, resumed):
        run(module["ada"], module["augment_pipe"], -torch.ones(8, 1), range(7, 13))
    assert resumed["augment_pipe"].p.item() == trained["augment_pipe"].p.item()
