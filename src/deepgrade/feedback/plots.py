"""The plots of a training run, as PNG images: curves per epoch, the confusion matrix, per-class accuracy.

Drawn with matplotlib (Agg, no display) from :class:`deepgrade.protocol.Curves`: numbers the grader
measured, never anything the student's process reported.
"""

from __future__ import annotations

import io

from ..protocol import Curves


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return out.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def training_curves(curves: Curves) -> bytes | None:
    """Accuracy and loss per epoch, training beside validation."""
    history = curves.history  # "loss", "accuracy" and their "val_" twins (the grader names them so)
    panels = [(title, history.get(title), history.get(f"val_{title}")) for title in ("accuracy", "loss")]
    panels = [p for p in panels if p[1] or p[2]]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.0), squeeze=False)
    for ax, (title, train, val) in zip(axes[0], panels, strict=True):
        for values, label, style in ((train, "training", "o-"), (val, "validation", "s--")):
            if values:
                epochs = [i + 1 for i, v in enumerate(values) if v is not None]
                ax.plot(epochs, [v for v in values if v is not None], style, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def confusion(curves: Curves) -> bytes:
    """The test set's confusion matrix: rows the true class, columns the predicted one."""
    import numpy as np

    plt = _pyplot()
    matrix = np.array(curves.confusion)
    n = len(curves.classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * n, 0.8 + 0.5 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), curves.classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), curves.classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    top = matrix.max() or 1
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > top / 2 else "black")
    ax.set_title("Confusion matrix (test set)", fontsize=10)
    return _png(fig)


def per_class(curves: Curves) -> bytes:
    """Accuracy on the test images of each class."""
    plt = _pyplot()
    values = [v if v is not None else 0.0 for v in curves.per_class_accuracy()]
    fig, ax = plt.subplots(figsize=(6.0, 0.6 + 0.3 * len(values)))
    ax.barh(range(len(values)), values, color=["#c0392b" if v < 0.7 else "#2e86c1" for v in values])
    ax.set_yticks(range(len(values)), curves.classes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy on the test images of the class")
    for i, v in enumerate(values):
        ax.text(min(v + 0.01, 0.9), i, f"{v:.2f}", va="center", fontsize=7)
    ax.set_title("Per-class accuracy (test set)", fontsize=10)
    return _png(fig)


def figures(curves: Curves) -> list[tuple[str, bytes]]:
    """(title, PNG) of each plot of a training run."""
    validation = f" (validation: {curves.validation})" if curves.validation else ""
    found = [(f"Training and validation accuracy and loss per epoch{validation}", training_curves(curves)),
             ("Confusion matrix on the test set", confusion(curves)),
             ("Accuracy per class on the test set", per_class(curves))]
    return [(title, png) for title, png in found if png]
