"""A generator exported as a standalone model: ONNX (ONNX Runtime and other inference runtimes) or TorchScript.

    python -m stylefuse.export network=ffhq format=onnx truncation_psi=0.7
    python -m stylefuse.export network=lsun-cat-config-f format=torchscript part=synthesis

`part=generator` exports z [N, z_dim] (and c [N, c_dim] for a conditional network) -> images [N, C, H, W] in
[-1, 1]: the mapping with the chosen truncation, then the synthesis with constant noise, so that the model is
deterministic; `part=synthesis` exports ws [N, num_ws, w_dim] -> images (for projected or mixed W). The batch size
is dynamic. The model computes in float32 (fp16 blocks too) with the non-grouped modulated convolution, whose
convolution shapes do not depend on the batch; its images equal the eager generator's to float rounding (~1e-6).

ONNX is written with opset 18, the lowest opset torch's exporter (torch.export based) writes; the older TorchScript
based exporter cannot export the modulated convolution (its weights are computed at run time). Opset 18 is read by
ONNX Runtime from version 1.14 (2023) on and by current versions of the other major runtimes. The export needs the
optional packages of `pip install "stylefuse[export]"` (onnx, onnxscript, and onnxruntime for the check).
"""

from __future__ import annotations

import logging
import os
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from stylefuse.cli import hydra_job
from stylefuse.errors import ConfigError, StylefuseError
from stylefuse.latents import seed_to_z
from stylefuse.networks import load_generator
from stylefuse.nn import Generator
from stylefuse.utils.files import atomic_write

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
PARTS = ("generator", "synthesis")
ONNX_OPSET = 18
MAX_ABS_DIFF = 1e-4  # an export whose images differ more from the eager generator's is refused


class ExportedGenerator(torch.nn.Module):
    """z (and c) -> images: mapping with a fixed truncation, synthesis with constant noise, float32."""

    def __init__(self, G: Generator, truncation_psi: float = 1, truncation_cutoff: int | None = None):
        super().__init__()
        self.G = G
        self.truncation_psi = truncation_psi
        self.truncation_cutoff = truncation_cutoff

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        ws = self.G.mapping(z, c, truncation_psi=self.truncation_psi, truncation_cutoff=self.truncation_cutoff)
        return self.G.synthesis(ws, noise_mode="const", force_fp32=True, fused_modconv=False)


class ExportedSynthesis(torch.nn.Module):
    """ws -> images: synthesis with constant noise, float32."""

    def __init__(self, G: Generator):
        super().__init__()
        self.synthesis = G.synthesis

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.synthesis(ws, noise_mode="const", force_fp32=True, fused_modconv=False)


def example_inputs(G: Generator, part: str, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Named inputs of the exported model for `batch` images: z from the official seed rule, one-hot labels cycling
    over the classes, and for the synthesis the ws of those z (truncation 1)."""
    z = torch.from_numpy(np.concatenate([seed_to_z(seed + i, G.z_dim) for i in range(batch)])).float()
    inputs = {"z": z}
    if G.c_dim:
        inputs["c"] = torch.eye(G.c_dim)[torch.arange(batch) % G.c_dim]
    if part == "synthesis":
        with torch.no_grad():
            inputs = {"ws": G.mapping(z, inputs.get("c"))}
    return inputs


def eager_images(G: Generator, part: str, inputs: dict[str, torch.Tensor], truncation_psi: float = 1,
                 truncation_cutoff: int | None = None) -> torch.Tensor:
    """What the generator itself makes of the inputs (its default, grouped modulated convolution), in float32."""
    with torch.no_grad():
        if part == "synthesis":
            return G.synthesis(inputs["ws"], noise_mode="const", force_fp32=True)
        return G(inputs["z"], inputs.get("c"), truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                 noise_mode="const", force_fp32=True)


def export_generator(G: Generator, path: str | os.PathLike, fmt: str, part: str = "generator",
                     truncation_psi: float = 1, truncation_cutoff: int | None = None) -> Path:
    """Writes G (on the CPU, in eval mode) as an ONNX or TorchScript model with a dynamic batch size."""
    G = G.cpu().eval().requires_grad_(False)
    model = ExportedSynthesis(G) if part == "synthesis" else ExportedGenerator(G, truncation_psi, truncation_cutoff)
    model.eval()
    inputs = example_inputs(G, part, batch=2)
    path = Path(path)

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"")  # an unwritable destination fails here, before the export's work
        if fmt == "onnx":
            _require("onnxscript", "onnx")
            logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # one line per deduplicated constant otherwise
            batch = torch.export.Dim("batch")
            with warnings.catch_warnings():  # z and c share the batch dimension, which the exporter points out
                warnings.filterwarnings("ignore", message=r".*The axis name")
                torch.onnx.export(model, tuple(inputs.values()), tmp, input_names=list(inputs), output_names=["img"],
                                  dynamic_shapes=tuple({0: batch} for _ in inputs), opset_version=ONNX_OPSET,
                                  dynamo=True, external_data=False)
        else:
            with warnings.catch_warnings():  # the traced shapes are constants apart from the batch (checked below)
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
                traced = torch.jit.trace(model, tuple(inputs.values()), check_trace=False)
                torch.jit.save(traced, tmp)

    atomic_write(path, write)  # never a half-written model file, also when the process is killed
    return path


def run_exported(path: str | os.PathLike, fmt: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Images of an exported model: ONNX through ONNX Runtime on the CPU, TorchScript through torch.jit."""
    if fmt == "onnx":
        ort = _require("onnxruntime")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(["img"], {k: v.numpy() for k, v in inputs.items()})[0])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
        return torch.jit.load(str(path), map_location="cpu")(*inputs.values())


def check_export(G: Generator, path: str | os.PathLike, fmt: str, part: str = "generator", truncation_psi: float = 1,
                 truncation_cutoff: int | None = None, batch: int = 4) -> float:
    """The largest absolute difference between the export's images and the eager generator's, over a batch of
    `batch` and a batch of 1 (the dynamic batch size)."""
    worst = 0.0
    for size in (batch, 1):
        inputs = example_inputs(G, part, batch=size, seed=100)
        expected = eager_images(G, part, inputs, truncation_psi, truncation_cutoff)
        worst = max(worst, (run_exported(path, fmt, inputs) - expected).abs().max().item())
    return worst


def _require(*modules: str) -> Any:
    for name in modules:
        try:
            module = __import__(name)
        except ImportError as err:
            raise ConfigError(f"format=onnx needs the package {name}: pip install \"stylefuse[export]\"") from err
    return module


def _default_name(network: str, part: str, fmt: str) -> str:
    stem = Path(urllib.parse.urlparse(network).path).stem or "network"
    return f"{stem}-{part}{FORMATS[fmt]}"


def run(cfg: DictConfig) -> dict[str, Any]:
    """The job behind `python -m stylefuse.export`; returns the exported file and the check's largest difference."""
    G = load_generator(cfg.network, "cpu", cache_dir=cfg.paths.cache_dir)
    path = Path(cfg.out) if cfg.out else Path(cfg.paths.output_dir) / _default_name(str(cfg.network), cfg.part,
                                                                                     cfg.format)
    try:
        export_generator(G, path, cfg.format, cfg.part, float(cfg.truncation_psi), cfg.truncation_cutoff)
    except StylefuseError:
        raise
    except OSError as err:
        raise ConfigError(f"cannot write {path} ({err.strerror or err}); choose a writable out=<file>") from err
    log.info("Wrote %s (%s, %s, dynamic batch)", path, cfg.format if cfg.format == "torchscript" else
             f"ONNX opset {ONNX_OPSET}", cfg.part)
    diff = None
    if cfg.check_batch:
        try:
            diff = check_export(G, path, cfg.format, cfg.part, float(cfg.truncation_psi), cfg.truncation_cutoff,
                                cfg.check_batch)
        except ConfigError as err:  # no onnxruntime: the export stands, unchecked
            log.warning("Not checked: %s", err)
        else:
            if diff > MAX_ABS_DIFF:
                raise StylefuseError(f"the exported model's images differ from the generator's by up to {diff:.2e} "
                                     f"(more than {MAX_ABS_DIFF:g}); {path} is not a faithful export")
            log.info("Checked: the exported images differ from the generator's by at most %.2e", diff)
    return {"path": str(path), "max_abs_diff": diff}


main = hydra_job("export", run)


if __name__ == "__main__":
    main()
