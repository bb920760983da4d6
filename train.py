"""Train StyleGAN2-ADA:  python train.py [dataset=...] [model=...] [trainer=...]  (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

import stylefuse.config  # noqa: F401  (registers the config resolvers)
from stylefuse.cli import user_errors
from stylefuse.training.setup import run_train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors
def main(cfg: DictConfig) -> float:
    return run_train(cfg)["kimg"]


if __name__ == "__main__":
    main()
