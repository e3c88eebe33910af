"""Real-KD: GDFQ with its generator replaced by the real training set — the reference for
what the family's fine-tuning can reach at the same budget on real data.

Everything but the images is GDFQ's (:mod:`dfqbench_gdfq.method`): its configuration and
budget rule (student LR, schedule, batch, calibration window), its student loss
(α·T²·KL_mean + CE on the images' true labels) and the quantized model in eval mode. Each
batch is drawn uniformly, with replacement, from the training split; there is no data
augmentation and no generator step (the recorded config is GDFQ's, its generator's fields
unused). It is **not data-free**: its records are marked as a
reference and never ranked. A data-free method's gap to it is what its data costs; a cell
where it does not beat ``noise`` either is one that fine-tuning at this budget cannot lift.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dfqbench.dfq.loop import Sample
from dfqbench_gdfq.method import GDFQ, GDFQConfig


class RealImagesGame:
    """GDFQ's student side on real (image, label) pairs; the images stand where the
    latent codes would be, and ``generate`` hands them on unchanged."""

    student_in_generator_step = False
    generator = None

    def __init__(self, train: Dataset, num_classes: int, cfg: GDFQConfig):
        self.train, self.num_classes, self.cfg = train, num_classes, cfg

    def sample(self, batch_size: int, device: torch.device) -> Sample:
        pairs = [self.train[int(i)] for i in torch.randint(0, len(self.train), (batch_size,))]
        images = torch.stack([image for image, _ in pairs]).to(device)
        labels = torch.tensor([int(label) for _, label in pairs], device=device)
        return Sample(images, labels, F.one_hot(labels, self.num_classes).float())

    def generate(self, sample: Sample) -> torch.Tensor:
        return sample.z

    student_loss = GDFQ.Game.student_loss


class RealKD(GDFQ):
    description = "GDFQ's student on real training images"

    def game(self, teacher, task, config, ctx) -> RealImagesGame:
        return RealImagesGame(ctx.real_data("train"), task.num_classes, config)
