"""The inversions on a trained generator (the shipped toy network), at equal steps: W+ reconstructs better than W,
regularized W+ sits between them with codes closer to W, pivotal tuning beats W+ and stays local."""

from __future__ import annotations

import pytest
import torch

from stylefuse.data.toy import render as render_toy
from stylefuse.data.toy import sample_codes
from stylefuse.networks import load_generator
from stylefuse.projection import PivotalTuningProjector, Projector, render
from tests.helpers import compose_cfg

STEPS = 60


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # uint8 [N, C, H, W] -> [N]
    mse = (a.double() - b.double()).square().mean(dim=[1, 2, 3])
    return 10 * torch.log10(255**2 / mse)


def spread(ws: torch.Tensor, w_std: float) -> float:
    """Mean distance of the per-layer codes from their mean, in W stds (0 = a W code)."""
    return float((ws - ws.mean(dim=1, keepdim=True)).norm(dim=2).mean() / w_std)


@pytest.fixture(scope="module")
def results(lpips_model):
    """A real toy face (rendered, not generated) and one the network made, projected with each preset's settings."""
    G = load_generator("toy")
    real = torch.from_numpy(render_toy(*sample_codes(999, 0), G.img_resolution))[None]
    with torch.no_grad():
        made = render(G, G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None))
    target = torch.cat([real, made])
    out = dict(G=G, target=target)
    for name in ("w", "wplus", "wplus_reg", "pti"):
        settings = compose_cfg("project", [f"projector={name}", "network=toy", "target=x"]).projector
        kwargs = {k: v for k, v in settings.items() if k not in ("_target_", "lpips_model", "num_steps",
                                                                  "w_avg_samples", "tune_steps", "tune_learning_rate")}
        cls = PivotalTuningProjector if name == "pti" else Projector
        extra = dict(tune_steps=40, tune_learning_rate=1e-3) if name == "pti" else {}  # PTI's 350 steps in 40
        projector = cls(G, lpips_model=lpips_model, num_steps=STEPS, w_avg_samples=2000, **kwargs, **extra)
        result = projector.project(target, progress=False)
        tuned = result.G if result.G is not None else G
        proj = render(tuned, result.ws)
        out[name] = dict(psnr=psnr(proj, target), lpips=projector.distance(target.float(), proj.float()),
                         spread=spread(result.ws, float(projector.w_std)), G=tuned)
    return out


def test_wplus_beats_w_on_real_and_generated_faces(results):
    w, wplus = results["w"], results["wplus"]
    assert (wplus["psnr"] > w["psnr"] + 1).all(), (w["psnr"], wplus["psnr"])
    assert (wplus["lpips"] < w["lpips"]).all(), (w["lpips"], wplus["lpips"])


def test_regularized_wplus_sits_between_with_codes_closer_to_w(results):
    w, wplus, reg = results["w"], results["wplus"], results["wplus_reg"]
    assert (reg["psnr"] > w["psnr"] + 1).all() and (reg["lpips"] < w["lpips"]).all()
    # On the real face, between W and W+ (on the generated one, a code in W, the pull towards W may even help).
    assert reg["psnr"][0] < wplus["psnr"][0] and reg["lpips"][0] > wplus["lpips"][0]
    assert w["spread"] < 1e-6 < reg["spread"] < wplus["spread"] * 0.8, (reg["spread"], wplus["spread"])


def test_pti_beats_its_pivots_and_wplus_on_the_real_face_and_stays_local(results):
    pti, w, wplus = results["pti"], results["w"], results["wplus"]
    assert (pti["psnr"] > w["psnr"] + 1).all() and (pti["lpips"] < w["lpips"]).all(), (w, pti)
    assert pti["lpips"][0] < wplus["lpips"][0], (wplus["lpips"], pti["lpips"])
    assert pti["spread"] < 1e-6  # the codes stay in W: the network moved instead
    G = results["G"]
    with torch.no_grad():  # away from the pivots, the tuned network still draws what the network drew
        far = G.mapping(torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(9)), None)
    before = render(G, far)
    kept = psnr(render(pti["G"], far), before)
    apart = psnr(before, before.roll(1, dims=0))  # how far apart two different faces are
    assert kept.min() > apart.max() + 5, (kept, apart)
