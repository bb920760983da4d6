"""The real detectors' loading code, on random weights placed in a temporary torch hub cache."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from unittest import mock

import pytest
import torch

from stylefuse.errors import NetworkFileError
from stylefuse.metrics import Detectors
from tests.metrics.stand_ins import random_images


def test_inception_detector_loads_weights_from_the_hub_cache(tmp_path, monkeypatch) -> None:
    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    with mock.patch.object(fidelity, "load_state_dict_from_url", return_value={}), \
            mock.patch.object(fidelity.FeatureExtractorInceptionV3, "load_state_dict"):
        weights = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict()
    name = os.path.basename(fidelity.URL_INCEPTION_V3)
    os.makedirs(tmp_path / "hub" / "checkpoints")
    torch.save(weights, tmp_path / "hub" / "checkpoints" / name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", mock.Mock(side_effect=AssertionError("tried to download")))

    detectors = Detectors()
    features = detectors.get("inception", torch.device("cpu"))
    probs = detectors.get("inception_probs", torch.device("cpu"))
    assert detectors.get("inception", torch.device("cpu")) is features  # built once
    images = torch.from_numpy(random_images(1, hi=256))
    f, p = features(images), probs(images)
    assert f.shape == (1, 2048) and f.dtype == torch.float32 and (f >= 0).all()  # pool features after ReLU
    assert p.shape == (1, 1008)
    torch.testing.assert_close(p.sum(1), torch.ones(1))
    # IS probabilities: softmax of the 1008 logits without the output bias, as the official detector.
    torch.testing.assert_close(p, (f @ weights["fc.weight"].T).softmax(dim=1))
    with pytest.raises(Exception, match="uint8"):
        features(images.float())


def test_missing_detector_weights_are_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline():
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    with pytest.raises(NetworkFileError, match=r"cannot load the weights of the vgg16 metric detector \(<urlopen "
                                               r"error \[Errno -2\] Name or service not known>\); they are downloaded "
                                               r"once into .*/hub/checkpoints") as err:
        Detectors(factories={"vgg16": offline}).get("vgg16", torch.device("cpu"))
    assert "\n" not in str(err.value)
