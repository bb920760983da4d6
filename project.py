"""Project images into a generator's latent space (GAN inversion), as the official projector.py does.

    python project.py network=<pkl|ckpt|url|name> target=<image or folder> [projector=wplus] [batch_size=4]
"""

import hydra
from omegaconf import DictConfig

from stylefuse.cli import user_errors
from stylefuse.config import CONF_DIR
from stylefuse.projection import run_projection


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="project")
@user_errors
def main(cfg: DictConfig) -> float:
    return run_projection(cfg)


if __name__ == "__main__":
    main()
