"""TF-era network pickles, written here by a stand-in `dnnlib.tflib.network.Network` with the real pickled state
(variables named and shaped as NVIDIA's TensorFlow code makes them): they load through the restricted unpickler,
every TF variable lands where the official conversion puts it, and nothing else is accepted."""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.networks import PRETRAINED_URLS, load_network_pkl
from stylefuse.nn import Discriminator, Generator
from tests.networks.stand_ins import stand_in_modules

TF_MODULES = ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")


@contextlib.contextmanager
def _tf_stand_in():
    """A `dnnlib.tflib.network.Network` that pickles its state as the real one does (`__getstate__`)."""

    class Network:
        def __init__(self, state: dict):
            self.state = state

        def __getstate__(self):
            return self.state

    with stand_in_modules({"dnnlib.tflib.network": {"Network": Network}}):
        yield Network


class TFConfig:
    """A small TF network configuration and the variables NVIDIA's TF code creates for it (random values)."""

    def __init__(self, version: int, resolution: int = 32, fmap_base: int = 64, fmap_max: int = 16, z: int = 16,
                 w: int = 16, labels: int = 0, mapping_layers: int = 2, G_arch: str = "skip", D_arch: str = "resnet",
                 D_mapping_layers: int = 0, extra_G: dict | None = None, extra_D: dict | None = None, seed: int = 0):
        self.version, self.res_log2 = version, int(math.log2(resolution))
        self.fmap_base, self.fmap_max, self.z, self.w, self.labels = fmap_base, fmap_max, z, w, labels
        self.mapping_layers, self.G_arch, self.D_arch, self.D_mapping_layers = (mapping_layers, G_arch, D_arch,
                                                                                D_mapping_layers)
        common = dict(num_channels=3, resolution=resolution, label_size=labels, fmap_base=fmap_base,
                      fmap_max=fmap_max)
        self.G_kwargs = dict(common, latent_size=z, dlatent_size=w, mapping_layers=mapping_layers,
                             mapping_fmaps=w, architecture=G_arch, truncation_psi=0.5, **(extra_G or {}))
        self.D_kwargs = dict(common, architecture=D_arch, **(extra_D or {}))
        if D_mapping_layers:
            self.D_kwargs["mapping_layers"] = D_mapping_layers
        self.rng = np.random.RandomState(seed)

    def nf(self, stage: int) -> int:
        return int(np.clip(int(self.fmap_base / 2.0**stage), 1, self.fmap_max))

    def var(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape).astype(np.float32)

    def mapping(self) -> dict[str, np.ndarray]:
        out = {}
        inputs = self.z
        if self.labels:
            out |= {"LabelEmbed/weight": self.var(self.labels, self.z), "LabelEmbed/bias": self.var(self.z)}
            inputs += self.z
        for i in range(self.mapping_layers):
            out |= {f"Dense{i}/weight": self.var(inputs, self.w), f"Dense{i}/bias": self.var(self.w)}
            inputs = self.w
        return out

    def modconv(self, scope: str, kernel: int, fin: int, fout: int, noise: bool = True) -> dict[str, np.ndarray]:
        out = {f"{scope}/weight": self.var(kernel, kernel, fin, fout), f"{scope}/mod_weight": self.var(self.w, fin),
               f"{scope}/mod_bias": self.var(fin), f"{scope}/bias": self.var(fout)}
        if noise:
            out[f"{scope}/noise_strength"] = np.float32(self.rng.standard_normal())  # 0-d: a numpy scalar
        return out

    def synthesis(self) -> dict[str, np.ndarray]:
        nf, out = self.nf, {}
        for i in range(self.res_log2 * 2 - 3):
            size = 2 ** ((i + 5) // 2)
            out[f"noise{i}"] = self.var(1, 1, size, size)
        out["4x4/Const/const"] = self.var(1, nf(1), 4, 4)
        out |= self.modconv("4x4/Conv", 3, nf(1), nf(1))
        if self.G_arch == "skip":
            out |= self.modconv("4x4/ToRGB", 1, nf(1), 3, noise=False)
        for res in range(3, self.res_log2 + 1):
            scope = f"{2**res}x{2**res}"
            out |= self.modconv(f"{scope}/Conv0_up", 3, nf(res - 2), nf(res - 1))
            out |= self.modconv(f"{scope}/Conv1", 3, nf(res - 1), nf(res - 1))
            if self.G_arch == "resnet":
                out[f"{scope}/Skip/weight"] = self.var(1, 1, nf(res - 2), nf(res - 1))
            if self.G_arch == "skip" or res == self.res_log2:
                out |= self.modconv(f"{scope}/ToRGB", 1, nf(res - 1), 3, noise=False)
        return out

    def discriminator(self) -> dict[str, np.ndarray]:
        nf, out = self.nf, {}
        cmap = nf(0)
        if self.labels and self.version == 5:
            out |= {"LabelEmbed/weight": self.var(self.labels, cmap), "LabelEmbed/bias": self.var(cmap)}
            for i in range(self.D_mapping_layers):
                out |= {f"Mapping{i}/weight": self.var(cmap, cmap), f"Mapping{i}/bias": self.var(cmap)}
        for res in range(self.res_log2, 2, -1):
            scope = f"{2**res}x{2**res}"
            if self.D_arch == "skip" or res == self.res_log2:
                out |= {f"{scope}/FromRGB/weight": self.var(1, 1, 3, nf(res - 1)),
                        f"{scope}/FromRGB/bias": self.var(nf(res - 1))}
            out |= {f"{scope}/Conv0/weight": self.var(3, 3, nf(res - 1), nf(res - 1)),
                    f"{scope}/Conv0/bias": self.var(nf(res - 1)),
                    f"{scope}/Conv1_down/weight": self.var(3, 3, nf(res - 1), nf(res - 2)),
                    f"{scope}/Conv1_down/bias": self.var(nf(res - 2))}
            if self.D_arch == "resnet":
                out[f"{scope}/Skip/weight"] = self.var(1, 1, nf(res - 1), nf(res - 2))
        if self.D_arch == "skip":
            out |= {"4x4/FromRGB/weight": self.var(1, 1, 3, nf(1)), "4x4/FromRGB/bias": self.var(nf(1))}
        out |= {"4x4/Conv/weight": self.var(3, 3, nf(1) + 1, nf(1)), "4x4/Conv/bias": self.var(nf(1)),
                "4x4/Dense0/weight": self.var(nf(1) * 16, nf(0)), "4x4/Dense0/bias": self.var(nf(0)),
                "Output/weight": self.var(nf(0), cmap if self.labels else 1),
                "Output/bias": self.var(cmap if self.labels else 1)}
        return out

    def states(self, module_src: str) -> tuple[dict, dict, dict]:
        """The pickled states of G, D and Gs (Gs: G's clone with its own values)."""
        synthesis_func = "G_synthesis_stylegan2" if self.version == 4 else "G_synthesis"

        def state(name, func, variables, kwargs, components=None):
            out = dict(version=self.version, name=name, static_kwargs=kwargs, components=components or {},
                       build_module_src=module_src, build_func_name=func, variables=list(variables.items()))
            if self.version == 5:
                out |= dict(input_shapes=[[None, 3]], output_shapes=[[None, 1]], input_names=["x"],
                            output_names=["y"])
            return out

        def generator(name):
            G_vars = {"dlatent_avg": self.var(self.w)} | ({"lod": np.float32(0)} if self.version == 4 else {})
            components = dict(mapping=state("G_mapping", "G_mapping", self.mapping(), self.G_kwargs),
                              synthesis=state("G_synthesis", synthesis_func, self.synthesis(), self.G_kwargs))
            return state(name, "G_main", G_vars, self.G_kwargs, components)

        D_func = "D_stylegan2" if self.version == 4 else "D_main"
        return generator("G"), state("D", D_func, self.discriminator(), self.D_kwargs), generator("Gs")


def _write_tf_pickle(path: Path, config: TFConfig, marker: Path, edit=None) -> tuple[dict, dict, dict]:
    """(G, D, Gs) pickled as the TF training loop does; `build_module_src` would touch `marker` if executed."""
    states = config.states(f"open({str(marker)!r}, 'w').close()\n")
    if edit:
        edit(*states)

    def network(state):
        state = dict(state, components={k: network(v) for k, v in state["components"].items()})
        return Network(state)

    with _tf_stand_in() as Network:
        path.write_bytes(pickle.dumps(tuple(network(s) for s in states), protocol=3))
    return states


# ---------------------------------------------------------------------------------------------------------------------
# The same networks built by hand from the TF variables, placing each variable where the TF code uses it.

def _all_variables(state: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {prefix + k: np.asarray(v, dtype=np.float32) for k, v in state["variables"]}
    for name, child in state["components"].items():
        out |= _all_variables(child, f"{prefix}{name}/")
    return out


def _by_hand(module: torch.nn.Module, variables: dict[str, np.ndarray], place) -> set[str]:
    """Writes every TF variable into `module` through `place(tf_name) -> (our name, value)`; returns the TF names
    that have no place (must be only TF-only state)."""
    params = dict(module.named_parameters()) | dict(module.named_buffers())
    unplaced = set()
    with torch.no_grad():
        for tf_name, value in variables.items():
            target = place(tf_name, value)
            if target is None:
                unplaced.add(tf_name)
                continue
            name, array = target
            assert params[name].shape == array.shape, (tf_name, name)
            params[name].copy_(torch.from_numpy(np.array(array, order="C")))
            params.pop(name)
    assert all(name.endswith("resample_filter") for name in params), sorted(params)  # all else came from TF
    return unplaced


def _place_G(tf_name: str, value: np.ndarray):
    parts = tf_name.split("/")
    if tf_name == "dlatent_avg":
        return "mapping.w_avg", value
    if parts[0] == "mapping":
        layer = "embed" if parts[1] == "LabelEmbed" else "fc" + parts[1][len("Dense"):]
        return f"mapping.{layer}.{parts[2]}", value.T if parts[2] == "weight" else value
    if parts[0] != "synthesis":
        return None  # lod
    if parts[1].startswith("noise"):
        index = int(parts[1][len("noise"):])
        res = 2 ** ((index + 5) // 2)
        layer = "conv1" if index == 0 or index % 2 == 0 else "conv0"
        return f"synthesis.b{res}.{layer}.noise_const", value[0, 0]
    res = int(parts[1].split("x")[0])
    if parts[2] == "Const":
        return f"synthesis.b{res}.const", value[0]
    layer = {"Conv": "conv1", "Conv0_up": "conv0", "Conv1": "conv1", "ToRGB": "torgb", "Skip": "skip"}[parts[2]]
    param = parts[3]
    if param == "mod_weight":
        return f"synthesis.b{res}.{layer}.affine.weight", value.T
    if param == "mod_bias":
        return f"synthesis.b{res}.{layer}.affine.bias", value + 1
    if param == "weight":
        kernel = np.flip(value, (0, 1)) if parts[2] in ("Conv0_up", "Skip") else value
        return f"synthesis.b{res}.{layer}.weight", np.transpose(kernel, (3, 2, 0, 1))
    return f"synthesis.b{res}.{layer}.{param}", value


def _place_D(tf_name: str, value: np.ndarray):
    parts = tf_name.split("/")
    if parts[0] in ("LabelEmbed",) or parts[0].startswith("Mapping"):
        layer = "embed" if parts[0] == "LabelEmbed" else "fc" + parts[0][len("Mapping"):]
        return f"mapping.{layer}.{parts[1]}", value.T if parts[1] == "weight" else value
    if parts[0] == "Output":
        return f"b4.out.{parts[1]}", value.T if parts[1] == "weight" else value
    res = int(parts[0].split("x")[0])
    if parts[1] == "Dense0":
        return f"b4.fc.{parts[2]}", value.T if parts[2] == "weight" else value
    layer = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip", "Conv": "conv"}[parts[1]]
    return f"b{res}.{layer}.{parts[2]}", np.transpose(value, (3, 2, 0, 1)) if parts[2] == "weight" else value


def _expected_kwargs(config: TFConfig, extra_G: dict, extra_D: dict) -> tuple[dict, dict]:
    """Our constructor kwargs for the TF config, per spec 10.4 (TF defaults where the pickle has no value)."""
    G = dict(z_dim=config.z, c_dim=config.labels, w_dim=config.w, img_resolution=2**config.res_log2, img_channels=3,
             mapping_kwargs=dict(num_layers=config.mapping_layers, layer_features=config.w),
             synthesis_kwargs=dict(channel_base=2 * config.fmap_base, channel_max=config.fmap_max,
                                   architecture=config.G_arch, **extra_G))
    D = dict(c_dim=config.labels, img_resolution=2**config.res_log2, img_channels=3, architecture=config.D_arch,
             channel_base=2 * config.fmap_base, channel_max=config.fmap_max, **extra_D,
             mapping_kwargs=dict(num_layers=config.D_mapping_layers, lr_multiplier=0.1),  # TF mapping_lrmul
             epilogue_kwargs=dict(mbstd_group_size=config.D_kwargs.get("mbstd_group_size")))
    return G, D


CONFIGS = {
    # StyleGAN2 TF config-f layout: G skip, D resnet, unconditional (version 4).
    "stylegan2-config-f": (dict(version=4), {}, {}),
    # StyleGAN2-ADA TF, conditional, fp16 + clamping, D orig with label mapping (the cifar layout, version 5).
    "ada-conditional": (dict(version=5, labels=4, D_arch="orig", D_mapping_layers=2,
                             extra_G=dict(num_fp16_res=2, conv_clamp=256),
                             extra_D=dict(num_fp16_res=2, conv_clamp=256, mbstd_group_size=2)),
                        dict(num_fp16_res=2, conv_clamp=256), dict(num_fp16_res=2, conv_clamp=256)),
    # config-e layouts: G resnet, D skip.
    "stylegan2-resnet-skip": (dict(version=4, G_arch="resnet", D_arch="skip"), {}, {}),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_tf_pickle_loads_with_every_variable_in_place(tmp_path, name):
    config_kwargs, extra_G, extra_D = CONFIGS[name]
    config = TFConfig(**config_kwargs)
    path, marker = tmp_path / f"{name}.pkl", tmp_path / "executed"
    G_state, D_state, Gs_state = _write_tf_pickle(path, config, marker)

    loaded = load_network_pkl(path)

    assert not marker.exists() and not any(name in sys.modules for name in TF_MODULES)
    assert loaded["augment_p"] is None and loaded["training_set_kwargs"] is None
    G_kwargs, D_kwargs = _expected_kwargs(config, extra_G, extra_D)
    torch.manual_seed(0)
    expected = dict(G=Generator(**G_kwargs), G_ema=Generator(**G_kwargs), D=Discriminator(**D_kwargs))
    for key, state, place in [("G", G_state, _place_G), ("G_ema", Gs_state, _place_G), ("D", D_state, _place_D)]:
        assert _by_hand(expected[key], _all_variables(state), place) <= {"lod"}
        module = loaded[key]
        assert type(module) is type(expected[key])
        reference = expected[key].state_dict()
        assert list(module.state_dict()) == list(reference)
        for param, tensor in module.state_dict().items():
            assert torch.equal(tensor, reference[param]), param
    z = torch.randn([4, config.z], generator=torch.Generator().manual_seed(1))
    c = torch.eye(config.labels)[torch.arange(4) % config.labels] if config.labels else None
    img = loaded["G_ema"](z, c, noise_mode="const", force_fp32=True)
    assert img.shape == (4, 3, 32, 32) and torch.isfinite(img).all()
    assert torch.equal(img, expected["G_ema"].eval()(z, c, noise_mode="const", force_fp32=True))
    assert torch.equal(loaded["D"](img, c, force_fp32=True), expected["D"].eval()(img, c, force_fp32=True))
    assert not torch.equal(loaded["G"](z, c, noise_mode="const", force_fp32=True), img)  # G and Gs differ
    assert loaded["D"].b4.mbstd.group_size == D_kwargs["epilogue_kwargs"]["mbstd_group_size"]


def _set_func(component: str, func: str):
    def edit(G, D, Gs):
        for state in (G, Gs):
            state["components"][component]["build_func_name"] = func
    return edit


def _add_kwarg(**kwargs):
    def edit(G, D, Gs):
        G["static_kwargs"] = dict(G["static_kwargs"], **kwargs)
    return edit


class _Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("edit, expected", [
    (_set_func("synthesis", "G_synthesis_stylegan_revised"), "configs A-D"),
    (lambda G, D, Gs: D.update(build_func_name="D_stylegan"), "configs A-D"),
    (lambda G, D, Gs: G.update(build_func_name="G_style"), "StyleGAN1"),
    (lambda G, D, Gs: G.update(version=3), "version 3"),
    (_add_kwarg(fmap_decay=0.5), "'fmap_decay' has no StyleGAN2-ADA equivalent"),
    (_add_kwarg(resolution=2**20), "img_resolution"),
    (lambda G, D, Gs: D["variables"].pop(), "has no variable Output/bias"),
    (lambda G, D, Gs: G["components"]["synthesis"]["variables"].append(("x", np.zeros(1, dtype=object))),
     "numpy object values"),
    (_add_kwarg(evil=_Call(os.system, "true")), f"refers to {os.system.__module__}.system"),
])
def test_unsupported_or_hostile_tf_pickles_are_refused(tmp_path, edit, expected):
    path, marker = tmp_path / "tf.pkl", tmp_path / "executed"
    _write_tf_pickle(path, TFConfig(version=4), marker, edit)
    with pytest.raises(NetworkFileError) as err:
        load_network_pkl(path)
    message = str(err.value)
    assert "\n" not in message and expected in message, message
    assert not marker.exists()


def test_tf_names_resolve_to_the_official_urls():
    assert PRETRAINED_URLS["lsun-cat-config-f"] == \
        "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-cat-config-f.pkl"
    assert PRETRAINED_URLS["ffhq-config-f"].endswith("/stylegan2/networks/stylegan2-ffhq-config-f.pkl")
    for name in ("car", "church", "horse"):
        assert PRETRAINED_URLS[f"lsun-{name}-config-f"].endswith(f"/stylegan2-{name}-config-f.pkl")
    assert PRETRAINED_URLS["tf-metfaces"] == "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada/pretrained/metfaces.pkl"


# ---------------------------------------------------------------------------------------------------------------------
# Optional: NVIDIA's legacy.py converts the same files (in a subprocess; this process never imports its code).

_OFFICIAL_CONVERTER = textwrap.dedent("""
    import sys, torch
    import legacy
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            data = legacy.load_network_pkl(f)
        z = torch.randn([4, data["G_ema"].z_dim], generator=torch.Generator().manual_seed(1))
        c_dim = data["G_ema"].c_dim
        c = torch.eye(c_dim)[torch.arange(4) % c_dim] if c_dim else torch.zeros([4, 0])
        img = data["G_ema"](z, c, noise_mode="const", force_fp32=True)
        torch.save(dict(state={key: data[key].state_dict() for key in ("G", "D", "G_ema")}, z=z, c=c, img=img,
                        D=data["D"](img, c, force_fp32=True)), path + ".official.pt")
""")


@pytest.mark.skipif(not os.environ.get("STYLEFUSE_OFFICIAL"),
                    reason="set STYLEFUSE_OFFICIAL to an NVlabs/stylegan2-ada-pytorch checkout to compare with it")
def test_tf_conversion_matches_official_legacy(tmp_path):
    official = Path(os.environ["STYLEFUSE_OFFICIAL"])
    paths = []
    for name, (config_kwargs, _, _) in CONFIGS.items():
        paths.append(tmp_path / f"{name}.pkl")
        _write_tf_pickle(paths[-1], TFConfig(**config_kwargs), tmp_path / "executed")
    (tmp_path / "convert.py").write_text(_OFFICIAL_CONVERTER)
    result = subprocess.run([sys.executable, str(tmp_path / "convert.py"), *map(str, paths)], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(official)), capture_output=True, text=True,
                            timeout=300)
    if result.returncode and "No module named" in result.stderr:
        pytest.skip(f"the official code needs a package this environment lacks: {result.stderr.splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    for path in paths:
        ref = torch.load(f"{path}.official.pt", weights_only=True)
        loaded = load_network_pkl(path)
        for key in ("G", "D", "G_ema"):
            ours = loaded[key].state_dict()
            assert list(ours) == list(ref["state"][key]), (path.name, key)
            for param, tensor in ours.items():
                assert torch.equal(tensor, ref["state"][key][param]), (path.name, key, param)
        c = ref["c"] if loaded["G_ema"].c_dim else None
        img = loaded["G_ema"](ref["z"], c, noise_mode="const", force_fp32=True)
        torch.testing.assert_close(img, ref["img"], rtol=0, atol=1e-5)
        torch.testing.assert_close(loaded["D"](ref["img"], c, force_fp32=True), ref["D"], rtol=0, atol=1e-5)
