"""GAN inversion (projection): the latent and noise maps with which G reproduces a target image.

The algorithm is the official StyleGAN2-ADA projector (spec 9.1), generalised in two ways that keep its results:
- `space='w+'` adds one free offset per layer to the shared w (see below); `space='w'` is the official run;
- targets are optimized in batches. Every image has its own latent, noise maps, Adam state and random stream, and
  the loss is a sum over images, so images never influence each other (bit for bit) and each follows the run it
  would have alone, up to float rounding that depends on the batch size (matmul/conv blocking). Adam can amplify
  that rounding over hundreds of steps at the official learning rate, as rerunning on another GPU would; final
  LPIPS/PSNR agree closely (tests/projection/test_projector.py).

W+ (`conf/projector/wplus.yaml`): ws = w + offsets [num_ws, w_dim]. The shared w runs the official W optimization,
the offsets start at 0 and move only from `layer_start` of the steps on, at their own `layer_learning_rate`, so W+
is W's run exactly until then and refines it afterwards. Optimizing num_ws free latents with the W settings
(lr 0.1 each, from w_avg) came out WORSE than W on a trained toy network (PSNR 19.8 vs 42.5 dB on images the network
made, 15.8 vs 20.2 dB on real toy images, at 300 steps), for three reasons measured there (README, "Inversion"):
- Adam steps every coordinate by about lr whatever its gradient's size. Layers with weak gradients (the fine, colour
  layers) then random-walk at full speed: the per-layer codes ended about 1 W std apart and off the W manifold.
  Offsets at lr 0.01 stay within ~0.1 W std of the shared w.
- Free layers from the first step fit detail before the coarse structure is found; starting them halfway, once the
  shared w has converged, removes that (and makes W+ >= W on images in W).
- LPIPS normalizes features, so it barely sees absolute colour; W's single code keeps colours plausible, free fine
  layers do not. A pixel MSE term (`mse_weight: 1` in the W+ presets) keeps them on the target.
One latent-noise draw for all layers at the W scale, as for W, is not a cause (per-layer draws measured the same);
it is kept shared so that W+ equals W until the offsets start. `layer_weight` (`projector=wplus_reg`) penalizes the
offsets' squared norm: e4e's delta regularization, codes closer to W for some reconstruction.

Perceptual distance: the official code runs NVIDIA's TorchScript `vgg16.pt` (LPIPS-VGG features). We use the `lpips`
package instead (the same LPIPS-VGG distance; a TorchScript file from the internet would be code we run), see
`stylefuse.projection.lpips`. Its VGG trunk comes from torchvision's ImageNet weights, downloaded on first use; tests
pass `lpips_vgg(pnet_rand=True)`, which downloads nothing.

The fast mode (conf/projector/w_fast.yaml; knobs `stages`, `start`, `optimize_noise`, `fused_modconv`,
`factored_demod`, `precision`, `channels_last`, all official by default) optimizes the same latents through cheaper
steps: see stylefuse/projection/fast.py.

Outputs follow the official tool: proj.png (and each video frame) is `G.synthesis(w, noise_mode='const')` of the
caller's G, i.e. with the network's own noise buffers, which is also what `generate.py --projected-w` renders; the
optimized noise maps are saved beside it in noise.npz.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lpips
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stylefuse.errors import ConfigError
from stylefuse.projection.fast import check_truncation, downsample, nearest_start, step_resolutions, use_fast_blocks
from stylefuse.projection.lpips import LpipsDistance, lpips_vgg
from stylefuse.utils.shapes import assert_shape

SPACES = ("w", "w+")
STARTS = ("w_avg", "nearest")


def learning_rate(t: float, initial_learning_rate: float, rampdown_length: float, rampup_length: float) -> float:
    """Learning rate at progress t = step / num_steps: linear warm-up from 0, cosine ramp-down to 0."""
    ramp = min(1.0, (1.0 - t) / rampdown_length)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / rampup_length)
    return initial_learning_rate * ramp


def latent_noise_scale(t: float, w_std: float, initial_noise_factor: float, noise_ramp_length: float) -> float:
    """Std of the noise added to the latent at progress t: decays quadratically to 0 at t = noise_ramp_length."""
    return w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2


@torch.no_grad()
def compute_w_stats(G: torch.nn.Module, num_samples: int, device: torch.device) -> tuple[torch.Tensor, np.float32]:
    """W midpoint [1, 1, w_dim] and scalar std (sqrt of the total variance) over mapped RandomState(123) z's."""
    z = np.random.RandomState(123).randn(num_samples, G.z_dim)
    w = G.mapping(torch.from_numpy(z).to(device), None)[:, :1, :]  # [num_samples, 1, w_dim]
    # Reduced in float32 numpy, and w_std kept a numpy float32, so the latent noise scale is computed in float32
    # exactly as the official code computes it.
    w = w.cpu().numpy().astype(np.float32)
    w_avg = np.mean(w, axis=0, keepdims=True)
    w_std = np.float32(np.sum((w - w_avg) ** 2) / num_samples) ** 0.5
    return torch.from_numpy(w_avg).to(device), w_std


def noise_regularization(noise_bufs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-image [N] sum of squared autocorrelations (1-pixel shifts in x and y) of noise maps [N, 1, H, W], at
    every scale of a 2x average-pooling pyramid down to 8x8: pushes the maps towards white noise."""
    reg = 0
    for v in noise_bufs:
        while True:
            reg = reg + (v * v.roll(shifts=1, dims=3)).mean(dim=[1, 2, 3]) ** 2
            reg = reg + (v * v.roll(shifts=1, dims=2)).mean(dim=[1, 2, 3]) ** 2
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, kernel_size=2)
    return reg


@torch.no_grad()
def normalize_noise_(noise_bufs: Sequence[torch.Tensor]) -> None:
    """Renormalizes each image's noise map [N, 1, H, W] to zero mean and unit variance, in place."""
    for buf in noise_bufs:
        buf -= buf.mean(dim=[1, 2, 3], keepdim=True)
        buf *= buf.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()



@dataclass
class Projection:
    """What `Projector.project` returns for a batch of N targets."""

    ws: torch.Tensor                # [N, num_ws, w_dim] final latents (without the latent noise).
    noise: dict[str, torch.Tensor]  # Noise buffer name in G.state_dict() -> optimized maps [N, H, W].
    w_steps: torch.Tensor | None    # [num_steps, N, num_ws, w_dim] latents after every step, if recorded.
    G: torch.nn.Module | None = None  # The generator the codes belong to when it was tuned (pivotal tuning).


class Projector:
    """The official projector (space 'w') and its W+ variant, for batches of target images."""

    def __init__(
        self,
        G: torch.nn.Module,                    # Generator; a private copy is optimized, G itself is never changed.
        lpips_model: lpips.LPIPS | None = None,  # Perceptual distance, frozen in place; None = lpips_vgg().
        space: str = "w",                      # 'w': one w repeated over all layers (official); 'w+': one per layer.
        num_steps: int = 1000,                 # Number of optimization steps.
        w_avg_samples: int = 10000,            # Mapped z's for the W midpoint and std.
        initial_learning_rate: float = 0.1,    # Peak Adam learning rate.
        initial_noise_factor: float = 0.05,    # Latent noise std at step 0, relative to the W std.
        lr_rampdown_length: float = 0.25,      # Cosine ramp-down of the learning rate over this last fraction.
        lr_rampup_length: float = 0.05,        # Linear warm-up of the learning rate over this first fraction.
        noise_ramp_length: float = 0.75,       # The latent noise reaches 0 at this fraction of the steps.
        optimize_noise: bool = True,           # Optimize the noise maps too (official), or keep G's own maps.
        regularize_noise_weight: float = 1e5,  # Weight of the noise autocorrelation penalty.
        mse_weight: float = 0.0,               # Weight of a pixel MSE term (images in [-1, 1]), 0 = official.
        layer_learning_rate: float = 0.01,     # W+: peak Adam lr of the per-layer offsets from the shared w.
        layer_start: float = 0.0,              # W+: the offsets start moving at this fraction of the steps.
        layer_weight: float = 0.0,             # W+: weight of the offsets' squared norm (in W std units), 0 = none.
        seed: int = 303,                       # Seed of every image's random stream (noise maps, latent noise).
        # The fast mode (stylefuse/projection/fast.py); the defaults are the official projector.
        stages: Sequence[Sequence[float]] | None = None,  # [[resolution, share of the steps], ...], None = full.
        start: str = "w_avg",                  # 'w_avg' (official) or 'nearest': mean of the nearest sampled w's.
        start_candidates: int = 64,            # Sampled w's the nearest start chooses from.
        start_nearest: int = 4,                # How many of the nearest it averages.
        start_resolution: int = 32,            # Resolution (truncated synthesis) at which it compares them.
        fused_modconv: bool | None = None,     # None = the network's default (grouped conv in eval mode).
        precision: str = "float32",            # 'bfloat16': synthesis blocks and LPIPS compute in bfloat16.
        channels_last: bool | None = None,     # Float32 blocks channels-last; None keeps the network's layout.
        factored_demod: bool = False,          # Demodulation coefficients by a matmul (equal up to rounding).
        device: str | torch.device = "cpu",
    ):
        if space not in SPACES:
            raise ConfigError(f"projector.space must be one of {SPACES}, got {space!r}")
        if start not in STARTS:
            raise ConfigError(f"projector.start must be one of {STARTS}, got {start!r}")
        if G.c_dim != 0:
            raise ConfigError(f"projection needs an unconditional network, this one has c_dim={G.c_dim}")
        self.space = space
        self.num_steps = num_steps
        self.initial_learning_rate = initial_learning_rate
        self.initial_noise_factor = initial_noise_factor
        self.lr_rampdown_length = lr_rampdown_length
        self.lr_rampup_length = lr_rampup_length
        self.noise_ramp_length = noise_ramp_length
        self.optimize_noise = optimize_noise
        self.regularize_noise_weight = regularize_noise_weight
        self.mse_weight = mse_weight
        self.layer_learning_rate = layer_learning_rate
        self.layer_start = layer_start
        self.layer_weight = layer_weight
        self.seed = seed
        self.stages = stages
        self.start = start
        self.start_candidates = start_candidates
        self.start_nearest = start_nearest
        self.start_resolution = start_resolution
        self.fused_modconv = fused_modconv
        self.precision = precision
        self.device = torch.device(device)

        self.G = copy.deepcopy(G).eval().requires_grad_(False).to(self.device)
        check_truncation(self.G, step_resolutions(stages, num_steps, G.img_resolution))
        if precision != "float32" or channels_last is not None or factored_demod:
            use_fast_blocks(self.G, precision, bool(channels_last), factored_demod)
        self.w_avg, self.w_std = compute_w_stats(self.G, w_avg_samples, self.device)  # [1, 1, w_dim], scalar
        self.own_noise = {name: buf for name, buf in self.G.synthesis.named_buffers() if "noise_const" in name}
        self.noise_shapes = {name: buf.shape for name, buf in self.own_noise.items()}
        self.distance = LpipsDistance(lpips_model if lpips_model is not None else lpips_vgg()).to(self.device)

    def project(self, target: torch.Tensor, record_steps: bool = False, progress: bool = True) -> Projection:
        """Projects targets [N, C, H, W] with values in [0, 255] (G's channels and resolution)."""
        G = self.G
        N = target.shape[0]
        assert_shape(target, [None, G.img_channels, G.img_resolution, G.img_resolution])
        target = target.to(self.device, torch.float32)
        resolutions = self.step_resolutions()
        with torch.no_grad():
            target_features = {res: self.distance.features(downsample(target, min(res, 256)) if res < G.img_resolution
                                                           else target) for res in set(resolutions)}
        if self.start == "nearest":  # the candidates are drawn with G's own noise maps, not a previous run's
            self._set_noise(self.own_noise)
            w_start = nearest_start(G, self.distance, target, self.start_candidates, self.start_nearest,
                                    self.start_resolution)
        else:
            w_start = self.w_avg.repeat(N, 1, 1)

        # One random stream per image, consumed as the official code consumes the global one: noise maps first,
        # then one latent-noise draw per step.
        generators = [torch.Generator(self.device).manual_seed(self.seed) for _ in range(N)]
        noise_bufs = self._install_noise(generators) if self.optimize_noise else []  # [N, 1, H, W] each
        w_opt = w_start.requires_grad_(True)  # [N, 1, w_dim]
        groups = [dict(params=[w_opt, *noise_bufs], peak_lr=self.initial_learning_rate, start=0.0)]
        offsets = None
        if self.space == "w+":  # ws = w + offsets: the shared w follows the official run, the offsets refine it.
            offsets = torch.zeros([N, G.num_ws, G.w_dim], device=self.device, requires_grad=True)
            groups.append(dict(params=[offsets], peak_lr=self.layer_learning_rate, start=self.layer_start))
        w_steps = torch.zeros([self.num_steps, N, G.num_ws, G.w_dim], device=self.device) if record_steps else None
        optimizer = torch.optim.Adam(groups, betas=(0.9, 0.999), lr=self.initial_learning_rate)

        bar = tqdm(range(self.num_steps), desc=f"projecting {N} image{'s' * (N > 1)}", disable=not progress,
                   leave=False)
        for step in bar:
            t = step / self.num_steps
            for group in optimizer.param_groups:  # a group that starts late runs the same schedule in its steps
                t_group = (t - group["start"]) / (1 - group["start"])
                group["lr"] = 0.0 if t_group < 0 else learning_rate(
                    t_group, group["peak_lr"], self.lr_rampdown_length / (1 - group["start"]), self.lr_rampup_length)
            noise_scale = latent_noise_scale(t, self.w_std, self.initial_noise_factor, self.noise_ramp_length)
            w_noise = torch.cat([torch.randn([1, 1, G.w_dim], generator=g, device=self.device) for g in generators])
            ws = (w_opt + w_noise * noise_scale).repeat([1, G.num_ws, 1])  # [N, num_ws, w_dim]
            if offsets is not None:
                ws = ws + offsets
            res = resolutions[step]
            synth = (self._synthesize(ws, res) + 1) * (255 / 2)

            dist = self.distance.distance(target_features[res], self._features(synth))  # [N]
            loss = dist
            if noise_bufs:
                loss = loss + noise_regularization(noise_bufs) * self.regularize_noise_weight
            if self.mse_weight != 0:
                loss = loss + ((synth - downsample(target, res)) / 127.5).square().mean(dim=[1, 2, 3]) * self.mse_weight
            if offsets is not None and self.layer_weight != 0:
                loss = loss + offsets.square().sum(dim=[1, 2]) / float(self.w_std) ** 2 * self.layer_weight
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()  # A sum keeps every image's gradients its own.
            optimizer.step()

            if w_steps is not None:
                w_steps[step] = self._ws(w_opt, offsets)
            normalize_noise_(noise_bufs)
            if progress and (step % 10 == 0 or step == self.num_steps - 1):
                bar.set_postfix(dist=f"{dist.detach().mean().item():.4f}", loss=f"{loss.detach().mean().item():.4f}")

        return Projection(
            ws=self._ws(w_opt, offsets),
            noise={f"synthesis.{name}": maps for name, maps in zip(self.noise_shapes, self._noise_maps(noise_bufs, N))},
            w_steps=w_steps,
        )

    def _ws(self, w_opt: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        """The latents [N, num_ws, w_dim] without the latent noise."""
        ws = w_opt.detach().repeat([1, self.G.num_ws, 1])
        return ws if offsets is None else ws + offsets.detach()

    def step_resolutions(self) -> list[int]:
        """The resolution the loss sees at every step (all G.img_resolution in the official mode)."""
        return step_resolutions(self.stages, self.num_steps, self.G.img_resolution)

    def estimate_seconds(self, num_images: int, clock: Callable[[], float] = time.perf_counter) -> float:
        """Expected seconds (of `clock`) to project `num_images` targets in one batch: one forward and backward pass
        timed at each resolution of the schedule (on w_avg) times its number of steps, plus the start search."""
        resolutions = self.step_resolutions()
        ws = self.w_avg.repeat(num_images, self.G.num_ws, 1).requires_grad_(True)
        seconds = 0.0
        for res in sorted(set(resolutions)):
            start = clock()
            synth = (self._synthesize(ws, res) + 1) * (255 / 2)
            self._features(synth).square().sum().backward()
            seconds += (clock() - start) * resolutions.count(res)
        if self.start == "nearest":
            target = (self._synthesize(ws.detach(), self.G.img_resolution) + 1) * (255 / 2)
            start = clock()
            nearest_start(self.G, self.distance, target, self.start_candidates, self.start_nearest,
                          self.start_resolution)
            seconds += clock() - start
        return seconds

    def _synthesize(self, ws: torch.Tensor, resolution: int) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> the running image [N, C, resolution, resolution] in [-1, 1], float32."""
        img = self.G.synthesis.running_image(ws, resolution, noise_mode="const", fused_modconv=self.fused_modconv)
        return img.to(torch.float32)

    def _features(self, synth: torch.Tensor) -> torch.Tensor:
        if self.precision == "float32":
            return self.distance.features(synth)
        with torch.autocast(self.device.type, dtype=getattr(torch, self.precision)):
            return self.distance.features(synth).to(torch.float32)

    def _noise_maps(self, noise_bufs: list[torch.Tensor], N: int) -> list[torch.Tensor]:
        """The noise maps [N, H, W] the projection used: the optimized ones, or G's own (not optimized)."""
        if noise_bufs:
            return [buf.detach()[:, 0] for buf in noise_bufs]
        return [buf.expand(N, *buf.shape) for buf in self.own_noise.values()]

    def _install_noise(self, generators: list[torch.Generator]) -> list[torch.Tensor]:
        """Fresh randn noise maps [N, 1, H, W] as the private G's `noise_const` buffers, so one batched synthesis
        uses per-image maps: SynthesisLayer adds `noise_const * noise_strength`, which broadcasts over the batch."""
        bufs = {name: torch.stack([torch.randn(shape, generator=g, device=self.device) for g in generators])
                .unsqueeze(1).requires_grad_(True) for name, shape in self.noise_shapes.items()}
        self._set_noise(bufs)
        return list(bufs.values())

    def _set_noise(self, bufs: dict[str, torch.Tensor]) -> None:
        """Makes `bufs` (buffer name in G.synthesis -> tensor) the private G's `noise_const` buffers."""
        for name, buf in bufs.items():
            layer_name, buf_name = name.rsplit(".", 1)
            setattr(self.G.synthesis.get_submodule(layer_name), buf_name, buf)

