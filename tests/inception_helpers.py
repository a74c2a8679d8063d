"""A random-init Inception weights file, so the real loading path runs without the real weights."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import torch


def random_inception_weights(path: Path, seed: int = 0) -> Path:
    """Save torch-fidelity's Inception-v3 with seeded random weights (and unit BN statistics)."""
    from torch_fidelity import feature_extractor_inceptionv3 as module

    with mock.patch.object(module.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None), \
            mock.patch.object(module, "load_state_dict_from_url", lambda *a, **k: {}), torch.random.fork_rng():
        torch.manual_seed(seed)
        net = module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        for name, param in net.named_parameters():  # keep activations O(1) through 90 layers
            if name.endswith("conv.weight"):
                torch.nn.init.kaiming_normal_(param, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path
