"""The training module: one official iteration reproduced from the golden tensors, and the schedule's formulas."""

from __future__ import annotations

import pytest
import torch

from stylefuse.nn import Discriminator, Generator
from stylefuse.training.loss import RoundInputs
from stylefuse.training.module import StyleGAN2Module
from tests.helpers import GOLDEN_DIR

GOLDEN = GOLDEN_DIR / "train_step_r16.pt"


@pytest.fixture(scope="module")
def golden():
    if not GOLDEN.is_file():
        pytest.fail(f"golden file missing: {GOLDEN} (the shared/ folder must sit beside the repository)")
    return torch.load(GOLDEN, weights_only=True)


def golden_module(golden, compiled: bool = False) -> StyleGAN2Module:
    h = golden["hparams"]
    module = StyleGAN2Module(
        G_kwargs=golden["official_kwargs"]["G"], D_kwargs=golden["official_kwargs"]["D"],
        loss_kwargs=dict(r1_gamma=h["r1_gamma"], style_mixing_prob=0, pl_weight=h["pl_weight"],
                         pl_batch_shrink=h["pl_batch_shrink"], pl_decay=h["pl_decay"]),
        optim_kwargs=dict(lr=h["lr"], betas=h["betas"], eps=h["eps"]),
        batch_size=4, batch_gpu=4, total_kimg=1, G_reg_interval=h["G_reg_interval"],
        D_reg_interval=h["D_reg_interval"], ema_kimg=h["ema_kimg"], ema_rampup=h["ema_rampup"],
        compile_main_phases=compiled)
    module.configure_compile(torch.device("cpu"))
    module.G.load_state_dict(golden["init"]["G"])
    module.D.load_state_dict(golden["init"]["D"])
    module.G_ema.load_state_dict(golden["init"]["G_ema"])
    module.cur_nimg.fill_(h["cur_nimg_before"])
    return module


def golden_inputs(golden) -> dict[str, list[RoundInputs]]:
    c = torch.zeros([4, 0])
    inputs = {phase: [RoundInputs(gen_z=golden["z"][phase], gen_c=c)] for phase in ["Gmain", "Dmain", "Dreg"]}
    pl_noise = torch.cat([golden["pl_noise"], torch.zeros_like(golden["pl_noise"])])  # only the first half is used
    inputs["Greg"] = [RoundInputs(gen_z=golden["z"]["Greg"], gen_c=c, pl_noise=pl_noise)]
    return inputs


def golden_iteration(golden, compiled: bool = False):
    """Runs our iteration on the golden inputs; returns the module and each phase's gradients before its step."""
    module = golden_module(golden, compiled)
    opt_G, opt_D = module.configure_optimizers()
    grads: dict[str, dict[str, torch.Tensor]] = {}
    phase_order = iter(["Gmain", "Greg", "Dmain", "Dreg"])
    for opt, net in [(opt_G, module.G), (opt_D, module.D)]:
        step = opt.step

        def recording_step(step=step, net=net):
            grads[next(phase_order)] = {n: p.grad.clone() for n, p in net.named_parameters()}
            return step()

        opt.step = recording_step
    # The golden run's per-layer synthesis noise came from the global RNG seeded like this (see the golden README's
    # construction: seed 7, then G and D built); our constructors consume the RNG exactly as the official ones.
    torch.manual_seed(7)
    Generator(**golden["official_kwargs"]["G"])
    Discriminator(**golden["official_kwargs"]["D"])
    module.run_iteration(golden["real"], torch.zeros([4, 0]), golden_inputs(golden), {"G": opt_G, "D": opt_D})
    return module, grads


@pytest.fixture(scope="module")
def golden_run(golden):
    return golden_iteration(golden)


@pytest.mark.parametrize("phase", ["Gmain", "Greg", "Dmain", "Dreg"])
def test_golden_phase_gradients(golden, golden_run, phase):
    _, grads = golden_run
    expected = golden["grads"][phase]
    assert set(grads[phase]) == set(expected)
    for name, value in expected.items():
        scale = value.abs().max().clamp(min=1e-12)
        assert (grads[phase][name] - value).abs().max() / scale < 1e-5, name
    norm = torch.cat([g.flatten() for g in grads[phase].values()]).norm()
    assert abs(norm.item() - golden["stats"][f"{phase}_grad_norm"]) < 1e-5 * golden["stats"][f"{phase}_grad_norm"]


@pytest.mark.parametrize("net", ["G", "D", "G_ema"])
def test_golden_weights_after_the_iteration(golden, golden_run, net):
    module, grads = golden_run
    ours = getattr(module, net).state_dict()
    # Adam's first step is ~lr * sign(grad): weights whose gradient is ~0 may land on either side.
    tiny = {name for phase in grads.values() for name, g in phase.items() if g.abs().min() < 1e-6}
    checked = 0
    for name, value in golden["after"][net].items():
        if name in tiny:
            close = (ours[name] - value).abs() < 1e-5
            assert close.float().mean() > 0.95, name
        else:
            torch.testing.assert_close(ours[name], value, atol=1e-5, rtol=0, msg=name)
            checked += 1
    assert checked > len(golden["after"][net]) // 2


def test_golden_path_length_mean_and_counters(golden, golden_run):
    module, _ = golden_run
    assert abs(float(module.loss.pl_mean) - golden["stats"]["pl_mean_after"]) < 1e-7
    assert int(module.cur_nimg) == golden["hparams"]["cur_nimg_before"] + 4 and int(module.batch_idx) == 1


def test_lazy_regularization_scales_optimizers(golden):
    module = golden_module(golden)
    opt_G, opt_D = module.configure_optimizers()
    assert opt_G.defaults["lr"] == pytest.approx(0.0025 * 4 / 5)
    assert opt_G.defaults["betas"][1] == pytest.approx(0.99 ** 0.8)
    assert opt_D.defaults["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert opt_D.defaults["betas"][1] == pytest.approx(0.99 ** (16 / 17))


@pytest.mark.slow
def test_compiled_main_phases_reproduce_the_golden_iteration(golden, golden_run):
    """model.compile: Gmain and Dmain through torch.compile (Greg and Dreg eager on the same parameters) give the
    official gradients and weights like eager, draw the same per-layer noise from the global RNG, and compile four
    graphs once (synthesis with and without gradients, D with gradients for its input or for its weights)."""
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    module, grads = golden_iteration(golden, compiled=True)
    rng_compiled = torch.get_rng_state()
    assert module.main_forwards.compiled and counters["stats"]["unique_graphs"] - graphs == 4
    eager, eager_grads = golden_iteration(golden)
    assert torch.equal(torch.get_rng_state(), rng_compiled)  # the noise consumed the RNG exactly as eager

    for phase, expected in golden["grads"].items():
        for name, value in expected.items():
            scale = value.abs().max().clamp(min=1e-12)
            assert (grads[phase][name] - value).abs().max() / scale < 1e-5, (phase, name)
            assert (grads[phase][name] - eager_grads[phase][name]).abs().max() / scale < 1e-5, (phase, name)
    for net in ("G", "D", "G_ema"):
        ours, theirs = getattr(module, net).state_dict(), getattr(eager, net).state_dict()
        for name, value in theirs.items():
            # Adam's first step is ~lr * sign(grad): only weights whose gradient is ~0 may land on either side.
            close = (ours[name] - value).abs() < 1e-5
            assert close.float().mean() > 0.95, (net, name)
    assert float(module.loss.pl_mean) == pytest.approx(golden["stats"]["pl_mean_after"], abs=1e-7)

    # Further iterations reuse the graphs: no recompilation.
    opt_G, opt_D = module.configure_optimizers()
    module.run_iteration(golden["real"], torch.zeros([4, 0]), golden_inputs(golden), {"G": opt_G, "D": opt_D})
    assert counters["stats"]["unique_graphs"] - graphs == 4
