"""The paper's Figure 4 for one run: losses, discriminator outputs for real and generated images, and FID, over kimg.

Reads the run folder's local logs (`stats.jsonl`, one line per tick, and `metric-*.jsonl`), so it works with any
logger. `python -m stylefuse.training.plot <run folder>` writes `<run folder>/figure4.png`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stylefuse.utils.files import atomic_write  # noqa: E402


def read_jsonl(path: Path) -> list[dict]:
    """The JSON lines of `path`, skipping a last line cut short by an interrupted write."""
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    pairs = [(row["kimg"], row[key]) for row in rows if key in row and row[key] is not None]
    return [k for k, _ in pairs], [v for _, v in pairs]


def plot_figure4(run_dir: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path | None:
    """Writes the three panels as one PNG; returns its path, or None when the run has no statistics yet."""
    run_dir = Path(run_dir)
    stats_path = run_dir / "stats.jsonl"
    if not stats_path.is_file():
        return None
    stats = read_jsonl(stats_path)
    metric_rows = {path.stem.removeprefix("metric-"): read_jsonl(path)
                   for path in sorted(run_dir.glob("metric-*.jsonl"))}
    fid_curves = {}
    for name, rows in metric_rows.items():
        if name.startswith("fid"):
            points = [(row["kimg"], row["results"][name]) for row in rows
                      if row.get("kimg") is not None and name in row.get("results", {})]
            fid_curves[name] = points

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for key, label in [("loss/G", "G loss"), ("loss/D", "D loss")]:
        ax.plot(*_series(stats, key), label=label)
    ax.set_title("(a) Losses")
    ax.set_xlabel("kimg")
    ax.legend()

    ax = axes[1]
    for key, label, color in [("scores/real", "D(real)", "tab:blue"), ("scores/fake", "D(generated)", "tab:orange")]:
        kimg, mean = _series(stats, key)
        _, std = _series(stats, key.replace("scores/", "scores_std/"))
        ax.plot(kimg, mean, label=label, color=color)
        if len(std) == len(mean):
            ax.fill_between(kimg, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=color, alpha=0.2)
    kimg, p = _series(stats, "augment/p")
    if any(value > 0 for value in p):
        twin = ax.twinx()
        twin.plot(kimg, p, color="tab:green", linestyle="--", label="augment p")
        twin.set_ylabel("augment p")
        twin.legend(loc="lower right")
    ax.set_title("(b) Discriminator outputs")
    ax.set_xlabel("kimg")
    ax.legend(loc="upper left")

    ax = axes[2]
    for name, points in fid_curves.items():
        ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=name)
    ax.set_title("(c) FID")
    ax.set_xlabel("kimg")
    if fid_curves:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no FID measured\n(set metrics=[fid50k_full])", ha="center", va="center",
                transform=ax.transAxes, color="gray")

    fig.suptitle(run_dir.name)
    fig.tight_layout()
    out_path = Path(out_path) if out_path is not None else run_dir / "figure4.png"
    atomic_write(out_path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)
    return out_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render the Figure-4 panels of a training run as a PNG.")
    parser.add_argument("run_dir", help="the run folder (outputs/train/<date>) holding stats.jsonl")
    parser.add_argument("--out", default=None, help="output PNG (default: <run_dir>/figure4.png)")
    args = parser.parse_args(argv)
    path = plot_figure4(args.run_dir, args.out)
    if path is None:
        raise SystemExit(f"error: no stats.jsonl in {args.run_dir}; pass the folder of a training run")
    print(path)


if __name__ == "__main__":
    main()
