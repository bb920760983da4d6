"""Benchmarks:  python -m stylefuse.bench train|project|generate|gpu-check [options]  (--help after the job)

Each job times what the corresponding command runs, on shapes given as flags, and prints its figures on the last
line (see the job's module: stylefuse/bench/train.py, project.py, generate.py). `gpu-check` is the prepared check
for a CUDA machine (stylefuse/bench/gpu_check.py); its exit status says whether every check passed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

JOBS = ("train", "project", "generate", "gpu-check")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in JOBS:
        print(f"usage: python -m stylefuse.bench {'|'.join(JOBS)} [options]  (--help after the job for its options)",
              file=sys.stderr)
        raise SystemExit(2)
    job, job_argv = argv[0], argv[1:]
    # Each job imports only what it needs.
    result = importlib.import_module(f"stylefuse.bench.{job.replace('-', '_')}").main(job_argv)
    if isinstance(result, int):  # an exit status (gpu-check); the timing jobs return their figures
        raise SystemExit(result)


if __name__ == "__main__":
    main()
