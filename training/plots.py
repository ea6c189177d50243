"""Training records beside the checkpoints: metrics.csv, curves.png (loss and accuracy), confusion.png."""

import csv
import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_top1",
    "test_loss",
    "test_top1",
    "test_top5",
    "epoch_seconds",
    "skipped",
    "test_skipped",
    "avg_test_top1",
)


def write_metrics_csv(path, history):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)


def write_curves_png(path, history):
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(ep, [h["test_loss"] for h in history], "o-", label="test")
    a.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    b.plot(ep, [h["train_top1"] for h in history], "o-", label="train top-1")
    b.plot(ep, [h["test_top1"] for h in history], "o-", label="test top-1")
    b.plot(ep, [h["test_top5"] for h in history], "o-", label="test top-5")
    averaged = [h for h in history if h.get("avg_test_top1") is not None]
    if averaged:  # --swa-epochs: the running weight average, beside the iterate it is taken from
        b.plot(
            [h["epoch"] for h in averaged],
            [h["avg_test_top1"] for h in averaged],
            "s-",
            label="test top-1, weight average",
        )
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_confusion_png(path, confusion, labels):
    """Rows: true class, columns: predicted; counts written in the cells when there are few classes."""
    cm = confusion.numpy() if hasattr(confusion, "numpy") else confusion
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * n + 2), max(4, 0.6 * n + 1.5)))
    ax.imshow(cm, cmap="Blues")
    if n <= 30:
        ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        top = cm.max() or 1
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > top / 2 else "black",
                )
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_run_records(out_dir, history, confusion, labels):
    """metrics.csv and curves.png of `history`, and confusion.png when there is a confusion matrix."""
    os.makedirs(out_dir, exist_ok=True)  # --export-only may name an --out that no run created
    write_metrics_csv(os.path.join(out_dir, "metrics.csv"), history)
    write_curves_png(os.path.join(out_dir, "curves.png"), history)
    if confusion is not None:
        write_confusion_png(os.path.join(out_dir, "confusion.png"), confusion, labels)
