"""Style fusion by layer range: `python fuse.py network=<pkl> image1=<png|npz|seed:N> image2=<...> ranges=paper`.

See conf/fuse.yaml for every option and stylefuse/fusion.py for what it computes.
"""

import hydra
from omegaconf import DictConfig

from stylefuse.cli import user_errors
from stylefuse.config import CONF_DIR
from stylefuse.fusion import run_fusion


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="fuse")
@user_errors
def main(cfg: DictConfig) -> None:
    run_fusion(cfg)


if __name__ == "__main__":
    main()
