"""The evaluation's pictures: quality against NFE, and samples beside held-out data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsfm.data.datasets import Dataset
from wsfm.report import EvalReport, Row

__all__ = ["plot_quality_vs_nfe", "show_samples"]


def plot_quality_vs_nfe(path: Path, report: EvalReport) -> None:
    """One curve per method and solver (log NFE; error bars: the spread over seeds), the
    methods without network calls (NFE 0) and the real-data floor as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    curves: dict[str, list[Row]] = {}
    for r in report.rows:
        curves.setdefault(r.method if r.nfe == 0 else f"{r.method} ({r.solver})", []).append(r)
    for i, (label, rows) in enumerate(sorted(curves.items())):
        rows = sorted(rows, key=lambda r: r.nfe)
        if rows[0].nfe == 0:
            ax.axhline(rows[0].quality, ls=":", lw=1, color=f"C{i % 10}", label=f"{label} (NFE 0)")
            continue
        ax.errorbar([r.nfe for r in rows], [r.quality for r in rows],
                    yerr=[r.spread for r in rows], marker="o", ms=3, capsize=2, label=label,
                    color=f"C{i % 10}", ls="-" if "euler" in label or "jump" in label else "--")
    ax.axhline(report.reference, color="k", lw=1.5,
               label=f"real data (n={report.reference_n})")
    ax.set_xscale("log")
    ax.set_xlabel("NFE (network calls)")
    ax.set_ylabel(f"{report.metric} ({'lower' if report.lower_is_better else 'higher'} is better)")
    ax.set_title(f"{report.task}: quality against NFE")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def show_samples(out: Path, data: Dataset, panels: dict[str, np.ndarray]) -> None:
    """``samples.png``: one panel per title of ``panels`` (scatter plots, image grids or
    words); for text, ``samples.txt`` as well."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if data.text is not None:
        decode = data.text.decode
        lines = [f"## {title}\n" + "\n".join(decode(x[:40])) for title, x in panels.items()]
        (out / "samples.txt").write_text("\n\n".join(lines) + "\n")
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False,
                             sharex=data.kind == "vector", sharey=data.kind == "vector")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, x) in zip(axes.flat, panels.items()):
        if data.kind == "image":
            ax.imshow(_grid(x[:64], data.shape), cmap="gray" if data.shape[0] == 1 else None)
            ax.axis("off")
        elif data.text is not None:
            ax.text(0, 1, "\n".join(data.text.decode(x[:24])), va="top", family="monospace",
                    parse_math=False)  # prose holds "$": not mathtext
            ax.axis("off")
        elif x.shape[1] >= 2:
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        else:
            ax.hist(x[:, 0], bins=60)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=80)
    plt.close(fig)


def _grid(x: np.ndarray, shape: tuple[int, ...], cols: int = 8) -> np.ndarray:
    """(n, C*H*W) in [-1, 1] -> one (rows*H, cols*W[, C]) image in [0, 1]."""
    c, h, w = shape
    n = len(x)
    rows = -(-n // cols)
    imgs = np.clip((x.reshape(n, c, h, w) + 1) / 2, 0, 1)
    canvas = np.ones((rows * h, cols * w, c))
    for i, img in enumerate(imgs):
        r, k = divmod(i, cols)
        canvas[r * h:(r + 1) * h, k * w:(k + 1) * w] = img.transpose(1, 2, 0)
    return canvas[..., 0] if c == 1 else canvas
