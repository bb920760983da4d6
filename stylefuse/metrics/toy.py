"""Offline metrics of toy-face generators, in the space of the toy probe (`stylefuse.probe`, shipped, no download).

- `fid_toy`: Fréchet distance between the probe's 128-d penultimate features of generated and real images (the FID
  formula with the probe in place of Inception). Rendered vs rendered toy faces give ~0; it grows with any shift of
  the attribute distribution or any loss of image quality the probe notices.
- `coverage_toy`: do generated images span the attribute ranges of the data? Per attribute, the histogram
  intersection of the probe's predictions for generated and real images over `COVERAGE_BINS` bins of equal real
  mass (colours: per channel, averaged; classes: over the predicted classes): 1 = generated attributes spread as
  the data's, 1 / COVERAGE_BINS = all generated images in one bin. Reported per attribute and averaged over the
  coarse and the fine attributes.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from stylefuse.data.toy import ATTRIBUTES
from stylefuse.metrics.collect import dataset_features, generator_features
from stylefuse.metrics.fid import compute_fid
from stylefuse.metrics.options import MetricOptions
from stylefuse.probe import split_predictions

COVERAGE_BINS = 10


def check_toy_data(opts: MetricOptions, metric: str) -> None:
    name = opts.open_dataset().name
    if name != "toy":
        warnings.warn(f"{metric} measures toy faces, but the real data is {name!r}: the value means little",
                      stacklevel=3)


def compute_fid_toy(opts: MetricOptions, max_real: int | None, num_gen: int) -> float:
    check_toy_data(opts, "fid_toy")
    return compute_fid(opts, max_real, num_gen, detector="toy_probe")


def histogram_intersection(real: np.ndarray, generated: np.ndarray, num_bins: int = COVERAGE_BINS) -> float:
    """sum_b min(p_real(b), p_gen(b)) over `num_bins` bins of equal real mass, for 1-d samples."""
    edges = np.quantile(real, np.linspace(0, 1, num_bins + 1)[1:-1])
    p_real = np.bincount(np.searchsorted(edges, real), minlength=num_bins) / len(real)
    p_gen = np.bincount(np.searchsorted(edges, generated), minlength=num_bins) / len(generated)
    return float(np.minimum(p_real, p_gen).sum())


def attribute_coverage(real: dict[str, torch.Tensor], generated: dict[str, torch.Tensor]) -> dict[str, float]:
    """Attribute name -> coverage of the data's values by the generated ones (see the module docstring), for
    probe predictions (`ToyProbe.predict` form) of real and generated images; plus 'coarse' and 'fine' means."""
    coverage = {}
    for attr in ATTRIBUTES:
        r, g = real[attr.name].double().numpy(), generated[attr.name].double().numpy()
        if attr.kind == "class":
            p_real = np.bincount(r.argmax(axis=1), minlength=attr.size) / len(r)
            p_gen = np.bincount(g.argmax(axis=1), minlength=attr.size) / len(g)
            coverage[attr.name] = float(np.minimum(p_real, p_gen).sum())
        elif attr.kind == "color":
            coverage[attr.name] = float(np.mean([histogram_intersection(r[:, ch], g[:, ch]) for ch in range(3)]))
        else:
            coverage[attr.name] = histogram_intersection(r, g)
    for group in ("coarse", "fine"):
        coverage[group] = float(np.mean([coverage[attr.name] for attr in ATTRIBUTES if attr.group == group]))
    return coverage


def compute_coverage_toy(opts: MetricOptions, max_real: int | None, num_gen: int) -> dict[str, float]:
    check_toy_data(opts, "coverage_toy")
    real = dataset_features(opts, "toy_attributes", max_real, capture_all=True).get_all()
    generated = generator_features(opts, "toy_attributes", num_gen, capture_all=True).get_all()
    return attribute_coverage(split_predictions(real), split_predictions(generated))
