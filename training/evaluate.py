"""Test-set evaluation: loss, top-1, top-5 and the confusion matrix, summed over every DDP rank."""

import torch
import torch.distributed as dist
import torch.nn.functional as F


@torch.no_grad()
def evaluate(model, loader, rt, num_classes: int, forward=None) -> dict:
    """Loss, top-1, top-5 and confusion matrix over the (sharded) test set; `forward` overrides model(x).

    Batches are (images, labels, undecodable count) (data.collate_skip); 5-d images are ten crops of each
    image, whose probabilities are averaged (paper section 4.1). Confusion rows are true classes.
    """
    model.eval()
    forward = forward or model
    loss_sum, top1, top5, seen, skipped = 0.0, 0, 0, 0, 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for x, y, bad in loader:
        skipped += bad
        if x is None:
            continue
        x, y = x.to(rt.device), y.to(rt.device)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=rt.cuda and forward is model):
            if x.dim() == 5:  # [B, 10, C, H, W] ten crops: average the probabilities
                probs = forward(x.flatten(0, 1)).float().softmax(1).view(x.shape[0], x.shape[1], -1).mean(1)
                logits = probs.clamp_min(1e-12).log()
            else:
                logits = forward(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        topk = logits.topk(min(5, num_classes), dim=1).indices
        top1 += (topk[:, 0] == y).sum().item()
        top5 += (topk == y[:, None]).any(1).sum().item()
        seen += len(y)
        cells = torch.bincount((y * num_classes + topk[:, 0]).cpu(), minlength=num_classes**2)
        confusion += cells.view(num_classes, num_classes)
    stats = torch.tensor([loss_sum, top1, top5, seen, skipped], dtype=torch.float64)
    if rt.ddp:
        dist.all_reduce(stats)
        dist.all_reduce(confusion)
    n = max(1.0, stats[3].item())
    return {
        "test_loss": stats[0].item() / n,
        "test_top1": stats[1].item() / n,
        "test_top5": stats[2].item() / n,
        "test_count": int(stats[3].item()),
        "test_skipped": int(stats[4].item()),
        "confusion": confusion,
    }
