"""conf/model and conf/data YAMLs instantiate into the objects the contracts promise."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy.spatial import ConvexHull

import scoresde
from scoresde.data import ArrayDataset

CONF = Path(__file__).resolve().parents[2] / "conf"
CHEAP_DATA = ["digits", "checkerboard", "swiss_roll", "moons", "pinwheel", "eight_gaussians", "gaussian", "mixture"]


@pytest.mark.parametrize("name", CHEAP_DATA)
def test_data_configs(name):
    cfg = OmegaConf.load(CONF / "data" / f"{name}.yaml")
    assert set(cfg) == ({"dataset", "ve_sigma_max", "kind", "dequantize"} if name == "digits" else
                        {"dataset", "ve_sigma_max", "kind"})  # fmt: skip
    assert cfg.kind == ("image" if name == "digits" else "points")
    assert cfg.get("dequantize", False) is (name == "digits")  # discrete digits train dequantised
    ds = instantiate(cfg.dataset)
    assert isinstance(ds, ArrayDataset) and ds.name == name
    # ve_sigma_max is the largest pairwise training distance, rounded up by less than 0.1: checked exactly, for 2-D
    # data on the convex hull's vertices (where the farthest pair lies), which is cheap
    x = ds.train.reshape(ds.train.shape[0], -1)
    if x.shape[1] == 2:
        x = x[torch.from_numpy(ConvexHull(x.numpy()).vertices)]
    d = scoresde.data.max_pairwise_distance(x)
    assert d <= cfg.ve_sigma_max < d + 0.1


@pytest.mark.parametrize("name, data", [("mlp", "checkerboard"), ("unet", "digits")])
def test_model_configs_build_score_models(name, data):
    cfg = OmegaConf.load(CONF / "model" / f"{name}.yaml")
    assert set(cfg) == {"net", "prediction", "time_input", "sigma_data"}
    ds = instantiate(OmegaConf.load(CONF / "data" / f"{data}.yaml").dataset, n_test=10)
    net = instantiate(cfg.net, event_shape=ds.event_shape)
    sigma_data = scoresde.models.parameterization.measure_sigma_data(ds.train) if cfg.sigma_data == "auto" else None
    model = scoresde.ScoreModel(net, scoresde.VPSDE(), prediction=cfg.prediction, time_input=cfg.time_input,
                                sigma_data=sigma_data)  # fmt: skip
    x = ds.train[:4]
    assert model(x, torch.full((4,), 0.5)).shape == x.shape


def test_large_unet_config_builds_for_28_and_32():
    cfg = OmegaConf.load(CONF / "model" / "unet_large.yaml")
    for shape in [(1, 28, 28), (3, 32, 32)]:
        net = instantiate(cfg.net, event_shape=shape)
        assert net.padded_size() == (32, 32)


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10"])
def test_file_dataset_configs(name, tmp_path):
    cfg = OmegaConf.load(CONF / "data" / f"{name}.yaml")
    assert set(cfg) == {"dataset", "ve_sigma_max", "kind", "dequantize"} and cfg.kind == "image"
    assert cfg.dequantize is False  # not measured on the 256-level datasets
    assert cfg.ve_sigma_max >= 40  # 784 or 3072 dims in [-1, 1]
    with pytest.raises(Exception, match=str(tmp_path / "missing")):
        instantiate(cfg.dataset, root=str(tmp_path / "missing"))
