"""python -m stylefuse.metrics network=<pkl|ckpt|url|name> metrics=[fid50k_full] [dataset=<option>|dataset.path=...]"""

from stylefuse.cli import hydra_job
from stylefuse.metrics.job import run

main = hydra_job("metrics", run)

if __name__ == "__main__":
    main()
