"""python -m stylefuse.metrics network=<pkl|ckpt|url|name> metrics=[fid50k_full] [dataset=<option>|dataset.path=...]"""

import hydra
from omegaconf import DictConfig

from stylefuse.cli import user_errors
from stylefuse.config import CONF_DIR
from stylefuse.metrics.job import run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="metrics")
@user_errors
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
