"""Train StyleGAN2-ADA:  python train.py [dataset=...] [model=...] [trainer=...]  (see conf/train.yaml)."""

from stylefuse.cli import hydra_job
from stylefuse.training.run import run

main = hydra_job("train", run)

if __name__ == "__main__":
    main()
