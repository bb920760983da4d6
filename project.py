"""Project images into a generator's latent space (GAN inversion), as the official projector.py does.

    python project.py network=<pkl|ckpt|url|name> target=<image or folder> [projector=wplus] [batch_size=4]
"""

from stylefuse.cli import hydra_job
from stylefuse.projection.job import run

main = hydra_job("project", run)

if __name__ == "__main__":
    main()
