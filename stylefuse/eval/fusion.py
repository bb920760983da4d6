"""Fusion measured: for pairs of toy faces and each layer range, how much of image 2's coarse and of its fine
attributes the fused image takes, read by the toy probe (`stylefuse.probe`), and how realistic the fused images are
(probe FID against the data). The quantitative version of the paper's Figure 8.

    python -m stylefuse.eval fusion network=toy                      # 1000 pairs of seeds, presets paper + styles
    python -m stylefuse.eval fusion network=toy inputs=projected     # rendered toy faces, projected first (W)
    python -m stylefuse.eval fusion network=toy inputs=projected projector=wplus

Transfer of one attribute for one pair: where the probe places the fused image between its values for image 1
and image 2, clipped to [0, 1] (scalars: (f - v1) / (v2 - v1); colours: the same along the RGB segment from v1 to
v2; classes: the same along the segment between the two probability vectors, for pairs of different predicted
classes). It is averaged over the pairs whose two values differ by at least `min_gap` of the attribute's range
(colours: of one channel's range, as RGB distance), then over the coarse and over the fine attributes of
`stylefuse.data.toy.ATTRIBUTES`. An empty range gives 0, the full range 1; the paper's claim is coarse ranges
near (1, 0) and fine ones near (0, 1).

Inputs (`conf/inputs/`): `seeds` maps pairs of seeds (first_seed + 2i, first_seed + 2i + 1, as `fuse.py
image1=seed:N` does); `projected` renders held-out toy faces and projects them with the `projector` config first
(the reconstructions are the anchors v1, v2; their quality is reported beside the transfer). With a projector that
tunes the generator (pivotal tuning), all faces are tuned together in one batch and fusion happens in that network.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from stylefuse.data.datasets import build_dataset
from stylefuse.data.toy import ATTRIBUTES, ToyDataset, render, sample_codes
from stylefuse.errors import ConfigError
from stylefuse.fusion.figure import labelled_row
from stylefuse.fusion.ranges import LayerRange, fuse_ws, range_label, resolve_ranges
from stylefuse.latents import seed_to_z
from stylefuse.metrics.fid import frechet_distance
from stylefuse.metrics.stats import FeatureStats
from stylefuse.networks import load_network_pkl
from stylefuse.nn import Generator
from stylefuse.probe import ToyProbe, load_probe
from stylefuse.utils.devices import resolve_device
from stylefuse.utils.images import generated_to_uint8, save_image

if TYPE_CHECKING:  # the projector loads LPIPS: imported only when projected inputs are asked for
    from stylefuse.projection import Projector

log = logging.getLogger(__name__)

GROUPS = ("coarse", "fine")
MIN_FID_IMAGES = 100  # fewer fused images per condition give no meaningful Fréchet distance (fid_toy: None)


@dataclasses.dataclass(frozen=True)
class Condition:
    """One way of fusing every pair: image 1's layers `layer_range` moved towards image 2's by `strength`."""

    kind: str                        # 'none' (image 1), 'full' (image 2), a preset name, 'window' or 'strength'.
    layer_range: LayerRange | None
    strength: float = 1.0

    @property
    def label(self) -> str:
        if self.kind in ("none", "full"):
            return self.kind
        start, end = self.layer_range
        return f"{self.kind} {start}-{end}" + ("" if self.kind != "strength" else f" @{self.strength:.2f}")


@dataclasses.dataclass
class FusionInputs:
    """Pairs of codes and the generator to fuse them in."""

    G: Generator
    w1: torch.Tensor                  # [N, num_ws, w_dim] image 1 of every pair.
    w2: torch.Tensor                  # [N, num_ws, w_dim] image 2.
    reconstruction: dict[str, float] = dataclasses.field(default_factory=dict)  # Projected inputs: their quality.


def seed_inputs(G: Generator, num_pairs: int, first_seed: int, trunc: float) -> FusionInputs:
    """Pair i = seeds first_seed + 2i and first_seed + 2i + 1, mapped with truncation `trunc`."""
    if G.c_dim != 0:
        raise ConfigError(f"the fusion evaluation needs an unconditional network, this one has c_dim={G.c_dim}")
    device = next(G.parameters()).device
    z = np.concatenate([seed_to_z(first_seed + idx, G.z_dim) for idx in range(2 * num_pairs)])
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(z).to(device), None, truncation_psi=trunc)
    return FusionInputs(G, ws[0::2], ws[1::2])


def projected_inputs(G: Generator, probe: ToyProbe, projector: Projector, num_pairs: int, toy_seed: int,
                     batch_size: int, out_dir: Path) -> FusionInputs:
    """Toy faces 0..2N-1 of `toy_seed` (pair i = faces 2i, 2i + 1), projected by `projector`; the per-image results
    go to out_dir/projections/face<NNNN>. Reconstruction quality: mean PSNR and LPIPS, and the probe's mean
    attribute difference between target and reconstruction (per group, in units of the range)."""
    from stylefuse.projection import PivotalTuningProjector, project_targets  # LPIPS only when projecting

    device = next(G.parameters()).device
    targets = np.stack([render(*sample_codes(toy_seed, idx), G.img_resolution) for idx in range(2 * num_pairs)])
    folders = [out_dir / "projections" / f"face{idx:04d}" for idx in range(len(targets))]
    if isinstance(projector, PivotalTuningProjector) and batch_size < len(targets):  # a pair must share a network
        raise ConfigError(f"pivotal tuning tunes one network per batch: set inputs.batch_size={len(targets)} so that "
                          f"every pair shares one tuned network")
    tuned: list[Generator] = []
    ws, projs, metrics = project_targets(G, projector, targets, folders, batch_size,
                                         on_tuned=lambda G_tuned, _dirs: tuned.append(G_tuned))
    fused_G = tuned[0] if tuned else G
    ws = torch.from_numpy(ws).to(device)
    with torch.no_grad():
        differences = attribute_differences(probe.predict(torch.from_numpy(targets).to(device)),
                                            probe.predict(torch.from_numpy(projs).to(device)))
    psnr = [m["psnr"] for m in metrics if m["psnr"] is not None]
    reconstruction = dict(psnr=float(np.mean(psnr)), lpips=float(np.mean([m["lpips"] for m in metrics])),
                          **{f"attribute_error_{group}": differences[group] for group in GROUPS})
    return FusionInputs(fused_G, ws[0::2], ws[1::2], reconstruction)


# ----------------------------------------------------------------------------


def attribute_scale(attr: Any) -> float:
    """The width of an attribute's range (colours: of one channel; classes: 1)."""
    return attr.bounds[1] - attr.bounds[0] if attr.kind != "class" else 1.0


def attribute_differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean |a - b| per attribute in units of its range (colours: RGB distance; classes: 1 - agreement of the
    predicted classes), and per group."""
    out = {}
    for attr in ATTRIBUTES:
        if attr.kind == "class":
            out[attr.name] = float((a[attr.name].argmax(1) != b[attr.name].argmax(1)).double().mean())
        else:
            diff = (a[attr.name] - b[attr.name]).double()
            diff = diff.norm(dim=1) if attr.kind == "color" else diff.abs()
            out[attr.name] = float(diff.mean()) / attribute_scale(attr)
    for group in GROUPS:
        out[group] = float(np.mean([out[attr.name] for attr in ATTRIBUTES if attr.group == group]))
    return out


def transfer_fractions(v1: dict[str, torch.Tensor], v2: dict[str, torch.Tensor], fused: dict[str, torch.Tensor],
                       min_gap: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per attribute: (transfer [N] in [0, 1], mask [N] of the pairs whose two values differ enough), from probe
    predictions (`ToyProbe.predict` form) of images 1, images 2 and the fused images."""
    out = {}
    for attr in ATTRIBUTES:
        a, b, f = (x[attr.name].double() for x in (v1, v2, fused))
        if attr.kind == "scalar":
            a, b, f = a[:, None], b[:, None], f[:, None]
        # The fused value's position along the segment from image 1's value to image 2's (for classes: along the
        # segment between the two probability vectors, so that image 1 itself gives exactly 0 and image 2 exactly 1
        # however unsure the probe is).
        d = b - a
        gap = d.square().sum(dim=1)
        t = ((f - a) * d).sum(dim=1) / gap.clamp(min=1e-12)
        if attr.kind == "class":
            valid = a.argmax(dim=1) != b.argmax(dim=1)
        else:
            valid = gap.sqrt() >= min_gap * attribute_scale(attr)
        out[attr.name] = (t.clamp(0, 1), valid)
    return out


def summarize_transfer(fractions: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Mean transfer per attribute over its valid pairs (NaN if none), and per group over its attributes."""
    out = {}
    for name, (t, valid) in fractions.items():
        out[name] = float(t[valid].mean()) if bool(valid.any()) else math.nan
    for group in GROUPS:
        values = [out[attr.name] for attr in ATTRIBUTES if attr.group == group and not math.isnan(out[attr.name])]
        out[group] = float(np.mean(values)) if values else math.nan
    return out


@torch.no_grad()
def synthesize(G: Generator, ws: torch.Tensor, batch_size: int, noise_mode: str) -> torch.Tensor:
    """ws [N, num_ws, w_dim] -> uint8 [N, C, H, W] (official generate.py conversion), in batches."""
    return torch.cat([generated_to_uint8(G.synthesis(batch, noise_mode=noise_mode))
                      for batch in ws.split(batch_size)])


@torch.no_grad()
def probe_images(probe: ToyProbe, images: torch.Tensor, batch_size: int) -> tuple[dict[str, torch.Tensor],
                                                                                  torch.Tensor]:
    """uint8 [N, 3, H, W] -> probe predictions (name -> values) and features [N, D], on the CPU."""
    preds: dict[str, list[torch.Tensor]] = {}
    feats = []
    for batch in images.split(batch_size):
        x = probe.prepare(batch)
        features = probe.features(x)
        feats.append(features.cpu())
        for name, value in probe.predict_features(features).items():
            preds.setdefault(name, []).append(value.cpu())
    return {name: torch.cat(values) for name, values in preds.items()}, torch.cat(feats)


def real_statistics(probe: ToyProbe, dataset: Any, num_real: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the probe features of the first `num_real` real images."""
    device = next(probe.parameters()).device
    stats = FeatureStats(capture_mean_cov=True)
    num = min(num_real, len(dataset))
    for start in tqdm(range(0, num, batch_size), desc="real features (toy probe)", unit="batch"):
        images = np.stack([dataset[idx][0] for idx in range(start, min(start + batch_size, num))])
        stats.append(probe(torch.from_numpy(images).to(device)))
    return stats.get_mean_cov()


def fid_of(features: torch.Tensor, real: tuple[np.ndarray, np.ndarray]) -> float:
    stats = FeatureStats(capture_mean_cov=True)
    stats.append(features)
    return frechet_distance(*stats.get_mean_cov(), *real)


def build_conditions(num_ws: int, presets: Mapping[str, Mapping[str, Any]], preset_names: Sequence[str],
                     window: int | None, strengths: Sequence[float], strength_preset: str | None) -> list[Condition]:
    """none, every range of each preset, every window of `window` layers, each range of `strength_preset` at each
    strength, full."""
    conditions = [Condition("none", None, 0.0)]
    for name in preset_names:
        conditions += [Condition(name, r) for r in resolve_ranges(name, presets, num_ws)]
    if window:
        if not 1 <= window <= num_ws:
            raise ConfigError(f"window={window} does not fit this network's {num_ws} layers: give 1..{num_ws}")
        conditions += [Condition("window", (start, start + window - 1)) for start in range(num_ws - window + 1)]
    if strength_preset:
        for r in resolve_ranges(strength_preset, presets, num_ws):
            conditions += [Condition("strength", r, float(s)) for s in strengths]
    return conditions + [Condition("full", (0, num_ws - 1))]


def evaluate_fusion(inputs: FusionInputs, probe: ToyProbe, conditions: Sequence[Condition],
                    real: tuple[np.ndarray, np.ndarray] | None, min_gap: float = 0.25, batch_size: int = 100,
                    noise_mode: str = "const") -> list[dict[str, Any]]:
    """One row per condition: transfer per attribute and group, number of pairs per group that differ, and the
    probe FID of the fused images against `real` (mean, covariance; None = not computed, also with fewer than
    MIN_FID_IMAGES pairs)."""
    G = inputs.G
    if len(inputs.w1) < MIN_FID_IMAGES:
        real = None
    v1, _ = probe_images(probe, synthesize(G, inputs.w1, batch_size, noise_mode), batch_size)
    v2, _ = probe_images(probe, synthesize(G, inputs.w2, batch_size, noise_mode), batch_size)
    rows = []
    for cond in tqdm(conditions, desc="fusion conditions", unit="range"):
        fused_ws = fuse_ws(inputs.w1, inputs.w2, cond.layer_range, cond.strength)
        fused, features = probe_images(probe, synthesize(G, fused_ws, batch_size, noise_mode), batch_size)
        fractions = transfer_fractions(v1, v2, fused, min_gap)
        summary = summarize_transfer(fractions)
        row: dict[str, Any] = dict(condition=cond.label, kind=cond.kind,
                                   start=None if cond.layer_range is None else cond.layer_range[0],
                                   end=None if cond.layer_range is None else cond.layer_range[1],
                                   strength=cond.strength, coarse=summary["coarse"], fine=summary["fine"],
                                   fid_toy=None if real is None else fid_of(features, real))
        row.update({f"pairs_{attr.name}": int(fractions[attr.name][1].sum()) for attr in ATTRIBUTES})
        row.update({f"transfer_{attr.name}": summary[attr.name] for attr in ATTRIBUTES})
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------
# Outputs.


def save_table(rows: Sequence[dict[str, Any]], csv_path: Path, json_path: Path, meta: dict[str, Any]) -> None:
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(json_path, "w") as file:
        json.dump(dict(meta, rows=list(rows)), file, indent=1)


def plot_transfer(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """transfer.png: coarse and fine transfer per layer range (presets and windows), and against strength."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranged = [r for r in rows if r["kind"] != "strength"]
    strength = [r for r in rows if r["kind"] == "strength"]
    fig, axes = plt.subplots(1, 2 if strength else 1, figsize=(13 if strength else 8, 4.2), squeeze=False,
                             gridspec_kw=dict(width_ratios=[2, 1] if strength else [1]))
    ax = axes[0, 0]
    x = np.arange(len(ranged))
    ax.bar(x - 0.2, [r["coarse"] for r in ranged], 0.4, label="coarse attributes (geometry)", color="tab:blue")
    ax.bar(x + 0.2, [r["fine"] for r in ranged], 0.4, label="fine attributes (appearance)", color="tab:orange")
    ax.set_xticks(x, [r["condition"] for r in ranged], rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of image 2's attributes taken")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    if strength:
        ax = axes[0, 1]
        for idx, key in enumerate(sorted({(r["start"], r["end"]) for r in strength})):
            sel = [r for r in strength if (r["start"], r["end"]) == key]
            color = f"C{idx + 2}"
            ax.plot([r["strength"] for r in sel], [r["coarse"] for r in sel], "-o", color=color,
                    label=f"layers {key[0]}-{key[1]}: coarse")
            ax.plot([r["strength"] for r in sel], [r["fine"] for r in sel], "--s", color=color,
                    label=f"layers {key[0]}-{key[1]}: fine")
        ax.set_xlabel("strength")
        ax.set_ylim(0, 1.05)
        ax.set_title("strength sweep", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def example_figure(inputs: FusionInputs, conditions: Sequence[Condition], num_rows: int, noise_mode: str,
                   path: Path) -> None:
    """examples.png: for the first pairs, image 1, image 2 and the image fused by each condition, labelled."""
    rows = []
    for idx in range(min(num_rows, len(inputs.w1))):
        w1, w2 = inputs.w1[idx:idx + 1], inputs.w2[idx:idx + 1]
        ws = [w1, w2] + [fuse_ws(w1, w2, c.layer_range, c.strength) for c in conditions]
        images = synthesize(inputs.G, torch.cat(ws), len(ws), noise_mode).permute(0, 2, 3, 1).cpu().numpy()
        labels = ["image 1", "image 2"] + [f"{c.kind}\n{range_label(c.layer_range, c.strength)}" for c in conditions]
        rows.append(labelled_row(list(images), labels))
    save_image(np.concatenate(rows), path)


# ----------------------------------------------------------------------------


def run(cfg: DictConfig) -> float:
    """The job behind `python -m stylefuse.eval fusion`: writes fusion.csv, fusion.json, transfer.png and
    examples.png; returns the coarse-minus-fine transfer of the first preset's coarsest range."""
    out_dir = Path(str(cfg.paths.output_dir))
    device = resolve_device(cfg.device)
    network = load_network_pkl(cfg.network, device=device)
    G = network["G_ema"]
    probe = load_probe(device=device)
    if probe.stale:
        log.warning("the toy probe was trained on another version of the toy renderer: retrain it with "
                    "python -m stylefuse.probe.train")
    conditions = build_conditions(G.num_ws, OmegaConf.to_object(cfg.fusion), list(cfg.presets), cfg.window,
                                  list(cfg.strengths), cfg.strength_preset)
    inputs_cfg = cfg.inputs
    if inputs_cfg.kind == "seeds":
        inputs = seed_inputs(G, inputs_cfg.num_pairs, inputs_cfg.first_seed, inputs_cfg.trunc)
    elif inputs_cfg.kind == "projected":
        from stylefuse.projection.job import build_projector  # LPIPS only when projecting

        projector = build_projector(G, cfg.projector, device)
        inputs = projected_inputs(G, probe, projector, inputs_cfg.num_pairs, inputs_cfg.toy_seed,
                                  inputs_cfg.batch_size, out_dir)
    else:
        raise ConfigError(f"unknown inputs kind {inputs_cfg.kind!r}: use inputs=seeds or inputs=projected")

    real = None
    if cfg.num_real:
        kwargs = network.get("training_set_kwargs")
        dataset = build_dataset(kwargs) if kwargs else ToyDataset(resolution=G.img_resolution)
        real = real_statistics(probe, dataset, cfg.num_real, cfg.batch_size)
    rows = evaluate_fusion(inputs, probe, conditions, real, cfg.min_gap, cfg.batch_size, cfg.noise_mode)

    meta = dict(network=str(cfg.network), inputs=OmegaConf.to_container(inputs_cfg, resolve=True),
                projector=OmegaConf.to_container(cfg.projector, resolve=True) if inputs_cfg.kind == "projected"
                else None, num_ws=G.num_ws, min_gap=cfg.min_gap, num_real=cfg.num_real,
                reconstruction=inputs.reconstruction, probe=probe.name)
    save_table(rows, out_dir / "fusion.csv", out_dir / "fusion.json", meta)
    title = f"{cfg.network}: {inputs_cfg.num_pairs} pairs ({inputs_cfg.kind})"
    plot_transfer(rows, out_dir / "transfer.png", title)
    shown = [c for c in conditions if c.kind == cfg.presets[0]] if cfg.presets else conditions[1:-1]
    example_figure(inputs, shown, cfg.example_rows, cfg.noise_mode, out_dir / "examples.png")
    for row in rows:
        log.info(f"{row['condition']:<22} coarse {row['coarse']:.3f}  fine {row['fine']:.3f}"
                 + ("" if row["fid_toy"] is None else f"  fid_toy {row['fid_toy']:.2f}"))
    if inputs.reconstruction:
        log.info("reconstruction: " + ", ".join(f"{k} {v:.3f}" for k, v in inputs.reconstruction.items()))
    log.info(f"Wrote fusion.csv, fusion.json, transfer.png and examples.png to {out_dir}")
    first = next(row for row in rows if row["kind"] not in ("none", "full"))
    return float(first["coarse"] - first["fine"])
