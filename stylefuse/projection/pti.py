"""Pivotal tuning (PTI, Roich et al. 2022): after projection, the generator itself is tuned so that it reproduces the
targets from their W codes (the pivots), while it keeps generating what it generated before away from them.

Why: W codes are faithful to the network's layer semantics (coarse rows = pose and shape, fine rows = colour), which
fusion relies on, but reconstruct real photos only approximately; free W+ codes reconstruct better by leaving the
region where those semantics were learned. PTI keeps the codes in W and moves the network towards the photos instead.

Only the synthesis network is tuned: the mapping stays as trained, so `seed:N` codes and every projected code keep
their meaning, and one tuned network holds all the targets tuned together (the joint mode fusion uses: both images
of a fusion live in one generator, so their rows can be exchanged). The loss per target is LPIPS + `l2_weight` x
pixel MSE (images in [-1, 1]); the locality term compares tuned and original synthesis, by the same loss, at random
codes `locality_radius` W standard deviations away from a pivot, towards a mapped random z, so that the tuning stays
local. Tuning stops early once every target's LPIPS is below `stop_lpips`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
from tqdm import tqdm

from stylefuse.networks import save_network_snapshot
from stylefuse.projection.lpips import LpipsDistance
from stylefuse.projection.projector import Projection, Projector
from stylefuse.utils.shapes import assert_shape


@dataclass
class Tuning:
    """What `PivotalTuner.tune` returns."""

    G: torch.nn.Module  # The tuned generator (a copy; eval mode, no gradients).
    num_steps: int      # Steps run (fewer than asked when every target reached stop_lpips).
    lpips: list[float]  # Per-target LPIPS of the tuned reconstruction, at the last step.


class PivotalTuner:
    """Tunes a copy of G's synthesis network on targets [N, C, H, W] with fixed pivots ws [N, num_ws, w_dim]."""

    def __init__(
        self,
        G: torch.nn.Module,              # Generator to start from; never changed itself.
        distance: LpipsDistance,         # Perceptual distance (the projector's).
        w_std: float,                    # Total W std of G (the projector's statistic): the unit of locality_radius.
        num_steps: int = 350,            # Most tuning steps.
        learning_rate: float = 3e-4,     # Adam lr, constant (PTI's).
        l2_weight: float = 1.0,          # Weight of the pixel MSE next to LPIPS.
        locality_weight: float = 0.1,    # Weight of the locality term, 0 = none.
        locality_radius: float = 1.0,    # Distance of the locality codes from their pivot, in W stds.
        stop_lpips: float = 0.0,         # Stop once every target's LPIPS is below this; 0 = run all steps.
        seed: int = 303,                 # Seed of the locality codes.
        device: str | torch.device = "cpu",
    ):
        self.G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
        self.distance = distance
        self.w_std = float(w_std)
        self.num_steps = num_steps
        self.learning_rate = learning_rate
        self.l2_weight = l2_weight
        self.locality_weight = locality_weight
        self.locality_radius = locality_radius
        self.stop_lpips = stop_lpips
        self.seed = seed
        self.device = torch.device(device)

    def _loss(self, reference: torch.Tensor, reference_feats: torch.Tensor, img: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (LPIPS + l2_weight x MSE, LPIPS) of images [N, C, H, W] in [0, 255] against a reference."""
        dist = self.distance.distance(reference_feats, self.distance.features(img))  # [N]
        mse = ((img - reference) / 127.5).square().mean(dim=[1, 2, 3])
        return dist + mse * self.l2_weight, dist

    def _locality_codes(self, pivots: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[N, num_ws, w_dim]: each pivot moved locality_radius W stds towards the code of a random z."""
        G = self.G
        z = torch.randn([len(pivots), G.z_dim], generator=generator, device=self.device)
        w = G.mapping(z, None)  # [N, num_ws, w_dim]
        direction = w - pivots
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-8).reshape(-1, 1, 1)
        return pivots + direction * (self.locality_radius * self.w_std * G.num_ws**0.5)

    def tune(self, target: torch.Tensor, pivots: torch.Tensor, progress: bool = True) -> Tuning:
        """Tunes on targets [N, C, H, W] in [0, 255] (G's channels and resolution) at pivots [N, num_ws, w_dim]."""
        original = self.G
        assert_shape(target, [None, original.img_channels, original.img_resolution, original.img_resolution])
        assert_shape(pivots, [target.shape[0], original.num_ws, original.w_dim])
        target = target.to(self.device, torch.float32)
        pivots = pivots.to(self.device, torch.float32)
        G = copy.deepcopy(original)
        G.synthesis.requires_grad_(True)
        optimizer = torch.optim.Adam(G.synthesis.parameters(), lr=self.learning_rate, betas=(0.9, 0.999))
        generator = torch.Generator(self.device).manual_seed(self.seed)
        with torch.no_grad():
            target_feats = self.distance.features(target)

        bar = tqdm(range(self.num_steps), desc=f"tuning on {len(target)} image{'s' * (len(target) > 1)}",
                   disable=not progress, leave=False)
        steps, dist = 0, None
        for steps in range(1, self.num_steps + 1):
            synth = (G.synthesis(pivots, noise_mode="const") + 1) * (255 / 2)
            loss, dist = self._loss(target, target_feats, synth)
            if self.stop_lpips > 0 and float(dist.detach().max()) < self.stop_lpips:
                break
            loss = loss.sum()
            if self.locality_weight != 0:
                ws = self._locality_codes(pivots, generator)
                with torch.no_grad():
                    before = (original.synthesis(ws, noise_mode="const") + 1) * (255 / 2)
                    before_feats = self.distance.features(before)
                after = (G.synthesis(ws, noise_mode="const") + 1) * (255 / 2)
                loss = loss + self._loss(before, before_feats, after)[0].sum() * self.locality_weight
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update()
            if progress and steps % 10 == 0:
                bar.set_postfix(lpips=f"{float(dist.detach().mean()):.4f}")
        bar.close()
        G.requires_grad_(False)
        return Tuning(G=G, num_steps=steps, lpips=[float(d) for d in dist.detach()])


class PivotalTuningProjector(Projector):
    """`projector=pti`: the projector's codes (official W by default) as pivots, then one generator tuned on all the
    targets of the call together; `Projection.G` is the tuned generator."""

    def __init__(
        self,
        G: torch.nn.Module,
        tune_steps: int = 350,              # PivotalTuner.num_steps
        tune_learning_rate: float = 3e-4,   # PivotalTuner.learning_rate
        tune_l2_weight: float = 1.0,        # PivotalTuner.l2_weight
        locality_weight: float = 0.1,       # PivotalTuner.locality_weight
        locality_radius: float = 1.0,       # PivotalTuner.locality_radius
        stop_lpips: float = 0.0,            # PivotalTuner.stop_lpips
        **projector_kwargs,                 # Projector's arguments, for the pivots.
    ):
        super().__init__(G, **projector_kwargs)
        self.tuner = PivotalTuner(G, self.distance, self.w_std, num_steps=tune_steps, learning_rate=tune_learning_rate,
                                  l2_weight=tune_l2_weight, locality_weight=locality_weight,
                                  locality_radius=locality_radius, stop_lpips=stop_lpips, seed=self.seed,
                                  device=self.device)

    def project(self, target: torch.Tensor, record_steps: bool = False, progress: bool = True) -> Projection:
        result = super().project(target, record_steps, progress)
        tuning = self.tuner.tune(target, result.ws, progress)
        result.G = tuning.G
        return result


def save_tuned_network(path: str | os.PathLike, G_tuned: torch.nn.Module, network: dict) -> None:
    """Writes the tuned generator as a stylefuse network file (G and G_ema tuned, the source file's D and dataset
    settings), which every tool loads like the network it came from."""
    G_tuned = copy.deepcopy(G_tuned).cpu()
    save_network_snapshot(path, G=G_tuned, D=network["D"].cpu(), G_ema=G_tuned, augment_p=network.get("augment_p"),
                          training_set_kwargs=network.get("training_set_kwargs"), kimg=0.0)
