"""Top-1/top-5 accuracy on a real validation split: run by the harness, never by a method."""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 256) -> tuple[float, float]:
    """(top-1, top-5) in percent of ``model`` in eval mode on ``dataset``."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = total = 0
    # Decoding images (ImageNet JPEGs) in this process would starve a GPU; on a CPU the
    # model needs the cores, and in-memory splits have nothing to decode.
    workers = min(8, os.cpu_count() or 1) if device.type == "cuda" and not isinstance(dataset, TensorDataset) else 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda")
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top == labels[:, None]
        correct1 += int(hits[:, 0].sum())
        correct5 += int(hits.any(dim=1).sum())
        total += labels.numel()
    model.train(was_training)
    return 100.0 * correct1 / total, 100.0 * correct5 / total
