"""Training the toy probe on rendered toy faces (unlimited labelled data), and its test errors.

    python -m stylefuse.probe.train                       # writes stylefuse/assets/toy-probe.pt
    python -m stylefuse.probe.train num_train=20000 epochs=4 out=/tmp/probe.pt

The training faces come from toy seed `train_seed`, the held-out test faces from `test_seed`; neither is the training
set of a GAN (toy seed 0). Each batch gets a little Gaussian pixel noise, so that the probe also reads generated
images, which are never quite as clean as the renderer's.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm import tqdm

from stylefuse.cli import hydra_job
from stylefuse.data.toy import ATTRIBUTES, attribute_values, render, sample_codes
from stylefuse.errors import ConfigError
from stylefuse.probe.network import ToyProbe, attribute_layout, decode_outputs, save_probe

log = logging.getLogger(__name__)


def render_labelled(seed: int, num: int, resolution: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Toy faces 0..num-1 of `seed`: uint8 images [num, 3, R, R] and probe targets float32 [num, NUM_OUTPUTS]
    (scalars scaled to [0, 1] over their bounds, colours as RGB, classes as their index in the first slot)."""
    layout = attribute_layout()
    images = np.empty([num, 3, resolution, resolution], np.uint8)
    targets = np.zeros([num, layout[-1][1].stop], np.float32)
    for idx in tqdm(range(num), desc=f"rendering toy seed {seed}", unit="img", disable=not progress, mininterval=2):
        coarse, fine = sample_codes(seed, idx)
        images[idx] = render(coarse, fine, resolution)
        values = attribute_values(coarse, fine)
        for attr, sl in layout:
            value = values[attr.name]
            if attr.kind == "scalar":
                lo, hi = attr.bounds
                targets[idx, sl] = (value - lo) / (hi - lo)
            elif attr.kind == "color":
                targets[idx, sl] = value
            else:
                targets[idx, sl.start] = value
    return images, targets


def probe_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over attributes: cross-entropy of classes, squared error of scaled values times 12 (a uniform [0, 1]
    value has variance 1/12, so each regressed value weighs as 1 - R^2)."""
    loss = outputs.new_zeros([])
    for attr, sl in attribute_layout():
        if attr.kind == "class":
            loss = loss + F.cross_entropy(outputs[:, sl], targets[:, sl.start].long())
        else:
            loss = loss + 12 * (outputs[:, sl] - targets[:, sl]).square().mean(dim=0).sum()
    return loss


@torch.no_grad()
def probe_errors(probe: ToyProbe, images: np.ndarray, targets: np.ndarray, batch_size: int = 500) -> dict[str, float]:
    """Test errors per attribute in its own units: mean absolute error of scalars and colour channels (colours in
    [0, 1]), accuracy of classes."""
    outputs = torch.cat([probe.outputs(torch.from_numpy(images[start:start + batch_size]))
                         for start in range(0, len(images), batch_size)])
    predicted, truth = decode_outputs(outputs), torch.from_numpy(targets)
    errors = {}
    for attr, sl in attribute_layout():
        if attr.kind == "class":
            errors[attr.name] = float((predicted[attr.name].argmax(dim=1) == truth[:, sl.start].long()).double().mean())
        elif attr.kind == "color":
            errors[attr.name] = float((predicted[attr.name] - truth[:, sl]).abs().mean())
        else:
            lo, hi = attr.bounds
            errors[attr.name] = float((predicted[attr.name] - (lo + (hi - lo) * truth[:, sl.start])).abs().mean())
    return errors


def format_errors(errors: dict[str, float]) -> str:
    """One line: accuracy of classes, mean absolute error of the rest (colours x 255, scalars as % of range)."""
    parts = []
    for attr in ATTRIBUTES:
        value = errors[attr.name]
        if attr.kind == "class":
            parts.append(f"{attr.name} {100 * value:.1f}% acc")
        elif attr.kind == "color":
            parts.append(f"{attr.name} {255 * value:.1f}/255")
        else:
            parts.append(f"{attr.name} {100 * value / (attr.bounds[1] - attr.bounds[0]):.1f}%")
    return ", ".join(parts)


def train_probe(
    resolution:  int = 32,      # Probe input size (toy faces rendered at this size).
    num_train:   int = 20000,   # Rendered training faces.
    num_test:    int = 5000,    # Rendered held-out faces.
    epochs:      int = 3,       # Passes over the training faces.
    batch_size:  int = 128,
    lr:          float = 1e-3,  # Adam, cosine decay to 0 over the run.
    noise_std:   float = 0.03,  # Pixel noise std (images in [-1, 1]), drawn uniformly in [0, noise_std] per image.
    train_seed:  int = 1,       # Toy seed of the training faces.
    test_seed:   int = 2,       # Toy seed of the test faces.
    seed:        int = 0,       # Initialization, shuffling and noise.
    progress:    bool = True,
) -> tuple[ToyProbe, dict[str, Any]]:
    """Trains a probe; returns it (eval mode) and the info saved with it (settings, test errors, CPU time)."""
    if train_seed == test_seed:
        raise ConfigError(f"train_seed and test_seed are both {train_seed}: the test faces must be held out")
    start, cpu_start = time.time(), time.process_time()
    torch.manual_seed(seed)
    images, targets = render_labelled(train_seed, num_train, resolution, progress)
    test_images, test_targets = render_labelled(test_seed, num_test, resolution, progress)
    probe = ToyProbe(resolution=resolution)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    steps = epochs * math.ceil(num_train / batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 + 0.5 * math.cos(math.pi * step / steps))
    images_t, targets_t = torch.from_numpy(images), torch.from_numpy(targets)
    generator = torch.Generator().manual_seed(seed)
    with tqdm(total=steps, desc="training probe", unit="step", disable=not progress) as bar:
        for epoch in range(epochs):
            probe.train()
            order = torch.randperm(num_train, generator=generator)
            for batch in order.split(batch_size):
                x = probe.prepare(images_t[batch])
                noise = torch.rand([len(batch), 1, 1, 1], generator=generator) * noise_std
                x = x + torch.randn(x.shape, generator=generator) * noise
                loss = probe_loss(probe.head(probe.features(x)), targets_t[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                bar.update()
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}", refresh=False)
            probe.eval()
            log.info(f"epoch {epoch + 1}/{epochs}: {format_errors(probe_errors(probe, test_images, test_targets))}")
    probe.requires_grad_(False)
    errors = probe_errors(probe, test_images, test_targets)
    info = dict(resolution=resolution, num_train=num_train, num_test=num_test, epochs=epochs, batch_size=batch_size,
                lr=lr, noise_std=noise_std, train_seed=train_seed, test_seed=test_seed, seed=seed,
                test_errors=errors, wall_seconds=time.time() - start, cpu_seconds=time.process_time() - cpu_start)
    return probe, info


def run(cfg: DictConfig) -> float:
    """The job behind `python -m stylefuse.probe.train`: trains, writes `cfg.out`, logs the test errors; returns
    the mean test accuracy of the class attributes."""
    probe, info = train_probe(cfg.resolution, cfg.num_train, cfg.num_test, cfg.epochs, cfg.batch_size, cfg.lr,
                              cfg.noise_std, cfg.train_seed, cfg.test_seed, cfg.seed)
    save_probe(cfg.out, probe, info)
    log.info(f"Test errors: {format_errors(info['test_errors'])}")
    log.info(f"Wrote {cfg.out} after {info['wall_seconds'] / 60:.1f} min ({info['cpu_seconds'] / 60:.1f} CPU-min)")
    return float(np.mean([info["test_errors"][attr.name] for attr in ATTRIBUTES if attr.kind == "class"]))


main = hydra_job("probe", run)


if __name__ == "__main__":
    main()
