"""Official snapshot pickles: read without NVIDIA code (stand-ins and, opt-in, real official files), hostile and
foreign pickles refused before anything runs, one-line errors for unusable files."""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks import load_network_pkl
from tests.helpers import assert_one_line
from tests.networks.reference import TRAINING_SET_KWARGS, assert_same_networks

NVIDIA_MODULES = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")


@contextlib.contextmanager
def _nvidia_stand_ins():
    """Installs stand-in modules so pickle can refer to NVIDIA's globals by name; removes them on exit."""
    assert not any(name in sys.modules for name in NVIDIA_MODULES)
    modules = {name: types.ModuleType(name) for name in NVIDIA_MODULES}

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("the stand-in reconstruct must never run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    modules["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    modules["dnnlib.util"].EasyDict = EasyDict
    sys.modules.update(modules)
    try:
        yield EasyDict
    finally:
        for name in NVIDIA_MODULES:
            del sys.modules[name]


class _Persistent:
    """Pickles like an instance of an official `@persistent_class`: `_reconstruct_persistent_obj(meta)`."""

    def __init__(self, meta: dict):
        self.meta = meta

    def __reduce__(self):
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,)


def _easy(value, EasyDict):
    return EasyDict({k: _easy(v, EasyDict) for k, v in value.items()}) if isinstance(value, dict) else value


def _official_style(module: torch.nn.Module, module_src: str, EasyDict, rename: dict[str, str]) -> _Persistent:
    """One of our modules as the official code pickles it: its `__dict__` with persistent children, `_init_args`/
    `_init_kwargs` (nested kwargs as EasyDicts) and numpy float64 attributes such as `weight_gain`/`act_gain`."""
    state = {k: np.float64(v) if type(v) is float else v for k, v in vars(module).items() if k != "init_kwargs"}
    state["_modules"] = collections.OrderedDict(
        (name, _official_style(child, module_src, EasyDict, rename)) for name, child in module._modules.items())
    state["_init_args"] = ()
    state["_init_kwargs"] = {k: _easy(v, EasyDict) for k, v in getattr(module, "init_kwargs", {}).items()}
    class_name = rename.get(type(module).__name__, type(module).__name__)
    return _Persistent(dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state))


def _write_official_style_pickle(path: Path, nets: dict, protocol: int = 4, marker: Path | None = None,
                                 augment_p: float | None = 0.25, rename: dict[str, str] | None = None,
                                 extra_G_kwargs: dict | None = None) -> str:
    """A snapshot dict pickled exactly like the official training loop's `pickle.dump`; returns the embedded
    module source, which touches `marker` and raises if anyone executes it."""
    module_src = f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('module_src was executed')\n"
    with _nvidia_stand_ins() as EasyDict:
        data = dict(training_set_kwargs=dict(TRAINING_SET_KWARGS))
        for key in ("G", "D", "G_ema"):
            data[key] = _official_style(nets[key], module_src, EasyDict, rename or {})
            if key.startswith("G") and extra_G_kwargs:
                data[key].meta["state"]["_init_kwargs"].update(extra_G_kwargs)
        data["augment_pipe"] = None
        if augment_p is not None:
            pipe_state = dict(training=False, _parameters=collections.OrderedDict(), _modules=collections.OrderedDict(),
                              _buffers=collections.OrderedDict(p=torch.tensor(augment_p)), xflip=np.float64(1),
                              _init_args=(), _init_kwargs=dict(xflip=1))
            data["augment_pipe"] = _Persistent(dict(type="class", version=6, module_src="raise RuntimeError",
                                                    class_name="AugmentPipe", state=pipe_state))
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    return module_src


@pytest.mark.parametrize("protocol, numpy_module", [(4, "numpy._core"), (3, "numpy.core"), (2, "numpy.core")])
def test_official_pickle_loads_without_nvidia_code(tmp_path, nets, inputs, outputs, protocol, numpy_module):
    path, marker = tmp_path / "network-snapshot-000000.pkl", tmp_path / "executed"
    module_src = _write_official_style_pickle(path, nets, protocol=protocol, marker=marker)
    if numpy_module == "numpy.core":  # what numpy 1 writes for numpy scalars (GLOBAL opcodes are plain text)
        raw = path.read_bytes()
        assert raw.count(b"cnumpy._core.multiarray\nscalar\n") == 1
        path.write_bytes(raw.replace(b"cnumpy._core.multiarray\nscalar\n", b"cnumpy.core.multiarray\nscalar\n"))
    assert f"{numpy_module}.multiarray".encode() in path.read_bytes()

    loaded = load_network_pkl(path)

    assert_same_networks(loaded, nets, inputs, outputs)
    assert loaded["augment_p"] == 0.25
    assert loaded["training_set_kwargs"] == TRAINING_SET_KWARGS
    assert not any(name in sys.modules for name in NVIDIA_MODULES)
    assert not marker.exists()
    with pytest.raises(RuntimeError, match="module_src was executed"):  # the canary works when executed
        exec(module_src, {})
    assert marker.exists()


def test_official_pickle_without_augment_pipe(tmp_path, nets, inputs, outputs):
    path = tmp_path / "noaug.pkl"
    _write_official_style_pickle(path, nets, augment_p=None)
    loaded = load_network_pkl(str(path))
    assert loaded["augment_p"] is None
    assert torch.equal(loaded["G_ema"](inputs[0], inputs[1], noise_mode="const"), outputs["G_ema"])


def _hostile_pickle(module: str, name: str, *args) -> bytes:
    """A protocol-0 pickle that calls `module.name(*args)`; protocol 0 lets us spell any global, e.g. `os.system`."""
    return f"c{module}\n{name}\n".encode() + pickle.dumps(tuple(args), protocol=0)[:-1] + b"R."


@pytest.mark.parametrize("module, name", [("os", "system"), ("posix", "system"), ("builtins", "eval"),
                                          ("subprocess", "Popen")])
def test_hostile_pickle_refused_before_it_runs(tmp_path, module, name):
    marker = tmp_path / "pwned"
    args = {"system": (f"touch {marker}",), "eval": (f"open({str(marker)!r}, 'w').close()",),
            "Popen": (["touch", str(marker)],)}[name]
    path = tmp_path / "evil.pkl"
    path.write_bytes(_hostile_pickle(module, name, *args))
    with pytest.raises(NetworkFileError) as err:
        load_network_pkl(path)
    assert_one_line(err, f"{module}.{name}", "which a network file never needs; refusing to run it")
    time.sleep(0.2 if name == "Popen" else 0)  # a started process would have touched the file by now
    assert not marker.exists()
    if module == "posix":  # the canary works: plain pickle would have run the command
        pickle.loads(path.read_bytes())
        assert marker.exists()


class _Evil:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_hostile_global_inside_a_snapshot_refused(tmp_path, nets):
    """An attacker hides a call deep inside an otherwise valid snapshot: still refused, nothing runs."""
    marker = tmp_path / "pwned"
    path = tmp_path / "snapshot.pkl"
    with _nvidia_stand_ins() as EasyDict:
        data = dict(training_set_kwargs=dict(TRAINING_SET_KWARGS, path=_Evil(f"touch {marker}")),
                    G=_official_style(nets["G"], "", EasyDict, {}))
        path.write_bytes(pickle.dumps(data))
    with pytest.raises(NetworkFileError) as err:
        load_network_pkl(path)
    assert_one_line(err, f"{os.system.__module__}.system")
    assert not marker.exists()


@pytest.mark.parametrize("variant", ["class", "kwargs"])
def test_non_stylegan2_ada_pickle_refused(tmp_path, nets, variant):
    """StyleGAN3 pickles: new classes (e.g. SynthesisInput) or constructor kwargs StyleGAN2-ADA does not take."""
    path = tmp_path / "stylegan3.pkl"
    if variant == "class":
        _write_official_style_pickle(path, nets, rename={"SynthesisBlock": "SynthesisInput"})
        expected = "SynthesisInput"
    else:
        _write_official_style_pickle(path, nets, extra_G_kwargs=dict(magnitude_ema_beta=0.999))
        expected = "magnitude_ema_beta"
    with pytest.raises(NetworkFileError) as err:
        load_network_pkl(path)
    assert_one_line(err, expected, "network 'G'", "StyleGAN2-ADA")


def test_tensorflow_network_without_state_refused(tmp_path):
    path = tmp_path / "stylegan2-ffhq-config-f.pkl"
    path.write_bytes(b"cdnnlib.tflib.network\nNetwork\n)\x81.")
    with pytest.raises(NetworkFileError) as err:
        load_network_pkl(path)
    assert_one_line(err, "TensorFlow network", "lacks its saved state")


@pytest.mark.parametrize("content, expected", [
    (None, "network file not found"),
    (pickle.dumps([1, 2, 3]), "holds a list"),
    (pickle.dumps(dict(G=1, D=2, G_ema=3)), "no StyleGAN2-ADA network 'G'"),
    (b"\x80\x04\x95 not really a pickle", "damaged"),
    (b"", "empty"),
])
def test_unusable_files_give_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "network.pkl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(NetworkFileError) as err:
        load_network_pkl(path)
    assert_one_line(err, expected)


_OFFICIAL_WRITER = textwrap.dedent("""
    import copy, pickle, sys
    from pathlib import Path
    import torch
    import dnnlib
    from training.augment import AugmentPipe
    from training.networks import Discriminator, Generator

    out = Path(sys.argv[1])
    E = dnnlib.EasyDict
    configs = {
        "skip_resnet": dict(c_dim=0, G=E(synthesis_kwargs=E(channel_base=512, channel_max=32, architecture="skip")),
                            D=E(architecture="resnet", channel_base=512, channel_max=32), ada=True),
        "cifar_cond": dict(c_dim=10, G=E(synthesis_kwargs=E(channel_base=512, channel_max=32)),
                           D=E(architecture="orig", channel_base=512, channel_max=32,
                               epilogue_kwargs=E(mbstd_group_size=32)), ada=True),
        "fp16_clamp": dict(c_dim=0, G=E(synthesis_kwargs=E(channel_base=512, channel_max=32, num_fp16_res=4,
                                                            conv_clamp=256)),
                           D=E(channel_base=512, channel_max=32, num_fp16_res=4, conv_clamp=256,
                               block_kwargs=E(freeze_layers=2)), ada=False),
    }
    for name, cfg in configs.items():
        torch.manual_seed(0)
        common = dict(c_dim=cfg["c_dim"], img_resolution=32, img_channels=3)
        G = Generator(z_dim=32, w_dim=32, mapping_kwargs=E(num_layers=2), **cfg["G"], **common).requires_grad_(False)
        D = Discriminator(**cfg["D"], **common).requires_grad_(False)
        G_ema = copy.deepcopy(G).eval()
        with torch.no_grad():
            for net in (G, D, G_ema):
                for key, t in list(net.named_parameters()) + list(net.named_buffers()):
                    if not key.endswith("resample_filter"):
                        t.add_(torch.randn(t.shape) * 0.2)
        pipe = None
        if cfg["ada"]:
            pipe = AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1,
                               contrast=1, lumaflip=1, hue=1, saturation=1).requires_grad_(False)
            pipe.p.copy_(torch.as_tensor(0.3125))
        snapshot = dict(training_set_kwargs=dict(path="x.zip", use_labels=cfg["c_dim"] > 0, resolution=32))
        for key, net in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", pipe)]:
            snapshot[key] = None if net is None else copy.deepcopy(net).eval().requires_grad_(False).cpu()
        with open(out / f"{name}.pkl", "wb") as f:
            pickle.dump(snapshot, f)
        z = torch.randn([4, 32])
        c = torch.eye(10)[torch.arange(4)] if cfg["c_dim"] else torch.zeros([4, 0])
        img = torch.randn([4, 3, 32, 32])
        torch.save(dict(z=z, c=c, img=img, augment_p=None if pipe is None else 0.3125,
                        G_ema=snapshot["G_ema"](z, c, noise_mode="const"), D=snapshot["D"](img, c)),
                   out / f"{name}.pt")
""")


@pytest.mark.skipif(not os.environ.get("STYLEFUSE_OFFICIAL"),
                    reason="set STYLEFUSE_OFFICIAL to an NVlabs/stylegan2-ada-pytorch checkout to compare with it")
def test_real_official_pickles_match_official_outputs(tmp_path):
    official = Path(os.environ["STYLEFUSE_OFFICIAL"])
    assert (official / "torch_utils" / "persistence.py").is_file(), f"not an official checkout: {official}"
    (tmp_path / "writer.py").write_text(_OFFICIAL_WRITER)
    env = dict(os.environ, PYTHONPATH=str(official))
    subprocess.run([sys.executable, str(tmp_path / "writer.py"), str(tmp_path)], env=env, cwd=tmp_path, check=True,
                   capture_output=True, timeout=300)
    for name in ("skip_resnet", "cifar_cond", "fp16_clamp"):
        ref = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        loaded = load_network_pkl(tmp_path / f"{name}.pkl")
        torch.testing.assert_close(loaded["G_ema"](ref["z"], ref["c"], noise_mode="const"), ref["G_ema"],
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(loaded["D"](ref["img"], ref["c"]), ref["D"], rtol=0, atol=1e-5)
        assert loaded["augment_p"] == ref["augment_p"]
    assert not any(name.split(".")[0] in ("torch_utils", "dnnlib", "training") for name in sys.modules)


def test_numpy_object_scalars_are_refused(tmp_path):
    # A numpy scalar of object dtype would smuggle an arbitrary pickled object through the allowed numpy globals.
    path = tmp_path / "object_scalar.pkl"
    with open(path, "wb") as f:
        pickle.dump({"weight_gain": np.float64(1.0), "x": np.dtype("O")}, f)
    with pytest.raises(NetworkFileError, match="numpy object") as err:
        load_network_pkl(str(path))
    assert "\n" not in str(err.value)
