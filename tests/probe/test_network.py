"""The toy probe: the shipped file reads held-out rendered faces within the errors the README states, loads through the
restricted reader (plain tensors only), and matches the renderer it was trained on."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from stylefuse.data.toy import ATTRIBUTES, render, sample_codes
from stylefuse.errors import NetworkFileError
from stylefuse.networks.snapshot import read_torch_file
from stylefuse.networks.sniff import ZIP
from stylefuse.probe import PROBE_FILE, ToyProbe, load_probe, save_probe
from stylefuse.probe.train import probe_errors, render_labelled

# Bounds for the shipped probe on faces it never saw (toy seed 3; it trained on seed 1 and measured the errors it
# records, and the README states, on seed 2): accuracy of classes, mean absolute error of scalars as a fraction of
# their range, of colour channels in [0, 1].
MIN_ACCURACY = {"shape": 0.7, "texture": 0.95}
MAX_SCALAR_ERROR = 0.2
MAX_COLOR_ERROR = 0.07
SLACK = 1.25  # 600 faces here vs the 5000 the stated errors are measured on


@pytest.fixture(scope="module")
def probe():
    return load_probe()


def test_shipped_probe_reads_held_out_faces_within_the_stated_errors(probe):
    images, targets = render_labelled(seed=3, num=600, resolution=32, progress=False)
    errors, stated = probe_errors(probe, images, targets), probe.info["test_errors"]
    for attr in ATTRIBUTES:
        value = errors[attr.name]
        if attr.kind == "class":
            assert value >= MIN_ACCURACY[attr.name] and value >= stated[attr.name] - 0.05, (attr.name, value)
            continue
        limit = MAX_COLOR_ERROR if attr.kind == "color" else MAX_SCALAR_ERROR * (attr.bounds[1] - attr.bounds[0])
        assert stated[attr.name] <= limit and value <= SLACK * stated[attr.name], (attr.name, value, stated)


def test_shipped_probe_is_current_and_reads_other_resolutions(probe):
    assert not probe.stale  # trained on today's renderer
    assert probe.info["test_errors"].keys() == {attr.name for attr in ATTRIBUTES}
    codes = [sample_codes(4, idx) for idx in range(50)]
    at32 = probe.predict(torch.from_numpy(np.stack([render(c, f, 32) for c, f in codes])))
    at64 = probe.predict(torch.from_numpy(np.stack([render(c, f, 64) for c, f in codes])))  # area-resized to 32
    # Geometry reads the same from 64x64 renders, within the probe's own error (measured: 0.3-0.6 of it). Eye size
    # and pattern strength do not (4x and 2x): area-resizing softens the small eyes and the pattern's edges.
    for attr in ATTRIBUTES:
        if attr.kind == "scalar" and attr.name not in ("eye_size", "texture_amount"):
            shift = float((at32[attr.name] - at64[attr.name]).abs().mean())
            assert shift < probe.info["test_errors"][attr.name], (attr.name, shift)


def test_probe_file_round_trip_and_one_line_refusals(tmp_path):
    torch.manual_seed(0)
    probe = ToyProbe(channels=(4, 8, 8, 8), feature_dim=16).eval()
    save_probe(tmp_path / "p.pt", probe, info=dict(note="test"))
    loaded = load_probe(tmp_path / "p.pt")
    x = torch.from_numpy(np.stack([render(*sample_codes(0, i), 32) for i in range(3)]))
    torch.testing.assert_close(loaded(x), probe(x), rtol=0, atol=0)
    assert loaded.info == dict(note="test") and not loaded.stale

    data = read_torch_file(tmp_path / "p.pt", "p", ZIP)
    data["attributes"] = data["attributes"][1:]
    torch.save(data, tmp_path / "old.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    cases = {"old.pt": "other toy attributes", "other.pt": "not a toy probe file", "junk.pt": "cannot read",
             "gone.pt": "not found"}
    for name, message in cases.items():
        with pytest.raises(NetworkFileError, match=message) as err:
            load_probe(tmp_path / name)
        assert "\n" not in str(err.value) and "python -m stylefuse.probe.train" in str(err.value)


def test_shipped_probe_is_small_plain_data():
    assert PROBE_FILE.stat().st_size < 4 * 2**20
    data = read_torch_file(PROBE_FILE, "probe", ZIP)  # the restricted reader: plain data or a refusal
    assert data["format"] == "stylefuse-toy-probe"


class _Call:
    """Pickles as `fn(*args)`: a call hidden in an otherwise ordinary probe file."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_a_probe_file_that_would_run_code_is_refused_without_running_it(tmp_path):
    probe = ToyProbe(channels=(4, 8, 8, 8), feature_dim=16)
    save_probe(tmp_path / "p.pt", probe, info={})
    data = read_torch_file(tmp_path / "p.pt", "p", ZIP)
    marker = tmp_path / "ran"
    data["info"] = _Call(os.system, f"touch {marker}")
    torch.save(data, tmp_path / "evil.pt")
    with pytest.raises(NetworkFileError, match="posix.system|os.system|not allowed|refus") as err:
        load_probe(tmp_path / "evil.pt")
    assert "\n" not in str(err.value) and not marker.exists()
    data["info"], data["kwargs"] = {}, dict(resolution=32, channels=[2**20] * 4, feature_dim=16)
    torch.save(data, tmp_path / "huge.pt")
    with pytest.raises(NetworkFileError, match="malformed constructor arguments"):
        load_probe(tmp_path / "huge.pt")  # refused before a 2**20-channel network is built
