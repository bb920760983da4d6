"""Style fusion by layer range: `python fuse.py network=<pkl> image1=<png|npz|seed:N> image2=<...> ranges=paper`.

See conf/fuse.yaml for every option and stylefuse/fusion/ for what it computes.
"""

from stylefuse.cli import hydra_job
from stylefuse.fusion.job import run

main = hydra_job("fuse", run)

if __name__ == "__main__":
    main()
