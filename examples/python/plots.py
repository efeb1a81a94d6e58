"""Charts from the crm_core wheel: the sales funnel and the RFM grid, as PNG files.

    pip install matplotlib
    python examples/python/plots.py [OUT_DIR]

Loads the demo data of ``tour.py`` into an in-memory database and writes ``funnel.png``
(open opportunities per stage) and ``rfm_grid.png`` (accounts per recency x frequency score).
"""

from __future__ import annotations

import os
import sys
from collections import Counter

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("plots.py needs matplotlib, which is not installed: `pip install matplotlib`")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tour import load_demo  # noqa: E402  (the demo data generator of the tour)

from crm_core import Crm  # noqa: E402


def main(out_dir: str) -> int:
    os.makedirs(out_dir, exist_ok=True)
    crm = Crm.memory()
    admin = crm.bootstrap("demo", "admin")
    demo = load_demo(admin, crm.now(), accounts=200)

    # Funnel: opportunities per stage, widest first.
    stages: list[str] = demo["stages"]
    counts = [admin.count("opportunity", {"stage": s}) for s in stages]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = max(counts) or 1
    for i, (stage, n) in enumerate(zip(stages, counts)):
        y = len(stages) - 1 - i
        ax.barh(y, n, left=(width - n) / 2, color=plt.cm.Blues(0.35 + 0.6 * i / len(stages)))
        ax.text(width / 2, y, f"{stage}  {n}", ha="center", va="center", fontsize=10)
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_title("Sales funnel: opportunities per stage")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    funnel = os.path.join(out_dir, "funnel.png")
    fig.tight_layout()
    fig.savefig(funnel, dpi=110)
    plt.close(fig)

    # RFM grid: accounts per (recency score, frequency score); 5 is best.
    rows = admin.rfm(window_days=365)
    grid = Counter((r.r, r.f) for r in rows)
    matrix = [[grid.get((r, f), 0) for r in range(1, 6)] for f in range(5, 0, -1)]
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(matrix, cmap="YlOrRd")
    ax.set_xticks(range(5), [str(r) for r in range(1, 6)])
    ax.set_yticks(range(5), [str(f) for f in range(5, 0, -1)])
    ax.set_xlabel("recency score (5 = bought recently)")
    ax.set_ylabel("frequency score (5 = buys often)")
    ax.set_title(f"RFM grid: {len(rows)} customers")
    for y, line in enumerate(matrix):
        for x, n in enumerate(line):
            ax.text(x, y, str(n), ha="center", va="center", color="black")
    fig.colorbar(im, ax=ax, label="accounts")
    rfm_png = os.path.join(out_dir, "rfm_grid.png")
    fig.tight_layout()
    fig.savefig(rfm_png, dpi=110)
    plt.close(fig)
    print(f"wrote {funnel} and {rfm_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
