"""`python -m stylefuse.export`: ONNX (through ONNX Runtime) and TorchScript generators give the eager generator's
images for any batch size, from any network file."""

from __future__ import annotations

import pytest
import torch

from stylefuse.config_checks import check_config
from stylefuse.errors import ConfigError
from stylefuse.export import check_export, eager_images, example_inputs, export_generator, run_exported
from stylefuse.export import run as run_export
from stylefuse.networks import load_generator, save_network_snapshot
from stylefuse.nn import Discriminator, Generator
from tests.helpers import compose_cfg

ATOL = 1e-4


@pytest.fixture(scope="module")
def conditional_G(tmp_path_factory) -> tuple[Generator, str]:
    """A 16x16 conditional G with fp16 blocks and clamping (the export computes in float32), visible noise and a
    non-zero w_avg, saved as a network file."""
    torch.manual_seed(0)
    kwargs = dict(z_dim=16, c_dim=4, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=1, conv_clamp=256))
    G = Generator(**kwargs).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)
    path = tmp_path_factory.mktemp("net") / "cond16.pt"
    D = Discriminator(c_dim=4, img_resolution=16, img_channels=3, channel_base=256, channel_max=16)
    save_network_snapshot(path, G, D, G, augment_p=None, training_set_kwargs=None, kimg=0)
    return load_generator(path), str(path)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("part", ["generator", "synthesis"])
def test_export_equals_the_eager_generator_for_any_batch(tmp_path, conditional_G, fmt, part):
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
        pytest.importorskip("onnxruntime")
    G, _ = conditional_G
    path = export_generator(G, tmp_path / f"G.{fmt}", fmt, part, truncation_psi=0.7, truncation_cutoff=3)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    for batch in (1, 5):
        inputs = example_inputs(G, part, batch, seed=7)
        expected = eager_images(G, part, inputs, truncation_psi=0.7, truncation_cutoff=3)
        images = run_exported(path, fmt, inputs)
        assert images.shape == (batch, 3, 16, 16)
        torch.testing.assert_close(images, expected, rtol=0, atol=ATOL)
    if part == "generator":  # the truncation is baked in: different from the untruncated generator
        untruncated = eager_images(G, part, inputs)
        assert (untruncated - images).abs().max() > 10 * ATOL
    if fmt == "onnx":  # named inputs, a dynamic batch dimension, opset 18
        model = pytest.importorskip("onnx").load(path)
        dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
        expected_dims = {"z": ["batch", 16], "c": ["batch", 4]} if part == "generator" else {"ws": ["batch", 6, 16]}
        assert dims == expected_dims
        assert [o.name for o in model.graph.output] == ["img"] and ("", 18) in {(o.domain, o.version)
                                                                                for o in model.opset_import}


def test_export_job_writes_and_checks_the_model(tmp_path, conditional_G):
    _, network = conditional_G
    cfg = compose_cfg("export", [f"network={network}", "format=torchscript", "truncation_psi=0.5",
                                 f"out={tmp_path}/g.pt", f"paths.output_dir={tmp_path}", "check_batch=3"])
    result = run_export(cfg)
    assert result["path"] == f"{tmp_path}/g.pt" and result["max_abs_diff"] < ATOL
    G = load_generator(network)
    assert check_export(G, result["path"], "torchscript", truncation_psi=0.5) < ATOL
    assert check_export(G, result["path"], "torchscript", truncation_psi=1.0) > 10 * ATOL  # psi 0.5 is in the file


@pytest.mark.parametrize("override, expected", [
    ("format=pdf", "format must be one of onnx, torchscript"),
    ("part=mapping", "part must be one of generator, synthesis"),
    ("truncation_psi=abc", "truncation_psi must be a number"),
    ("truncation_cutoff=-1", "truncation_cutoff must be null or a number of layers"),
])
def test_export_job_bad_values_are_one_line(tmp_path, conditional_G, override, expected):
    _, network = conditional_G
    cfg = compose_cfg("export", [f"network={network}", override, f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError) as err:
        check_config("export", cfg)
    assert "\n" not in str(err.value) and expected in str(err.value)
