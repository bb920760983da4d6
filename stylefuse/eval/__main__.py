"""python -m stylefuse.eval fusion [key=value ...]   (see stylefuse/eval/fusion.py and conf/eval_fusion.yaml)"""

from __future__ import annotations

import importlib
import sys

JOBS = {"fusion": "eval_fusion"}  # evaluation -> its config in conf/


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in JOBS:
        print(f"usage: python -m stylefuse.eval {'|'.join(JOBS)} [key=value ...]", file=sys.stderr)
        raise SystemExit(2)
    job = sys.argv.pop(1)  # Hydra reads the overrides from sys.argv
    from stylefuse.cli import hydra_job

    hydra_job(JOBS[job], importlib.import_module(f"stylefuse.eval.{job}").run)()


if __name__ == "__main__":
    main()
