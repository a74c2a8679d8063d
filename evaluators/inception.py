"""Inception features the way the papers' FID protocol needs them, from a local weights file.

The network is torch-fidelity's ``inception-v3-compat``, a port of the 2015-12-05 TensorFlow graph
that ADM's evaluation suite uses (bilinear resize to 299 like TF1, same weights). For every batch of
uint8 images we take, in one forward pass:

* ``pool``: the 2048-d ``pool_3`` features (FID, KID, precision/recall);
* ``logits``: the 1008 unbiased logits (``softmax/logits/MatMul``; Inception Score);
* ``spatial``: ADM's sFID features -- the first 7 channels of TF node ``mixed_6/conv``, the 1x1
  branch of the fourth 17x17 block (torch-fidelity's ``Mixed_6d.branch1x1``, after its batch norm
  and ReLU), flattened in TF's NHWC order: 17 * 17 * 7 = 2023 values.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import write_bytes_atomic

WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_SOURCE = ("torch-fidelity's release v0.2.0 (github.com/toshas/torch-fidelity/releases), the TF "
                  "2015-12-05 Inception graph converted to PyTorch")
SPATIAL_MODULE = "Mixed_6d.branch1x1"
SPATIAL_CHANNELS = 7
FEATURE_DIMS = {"pool": 2048, "logits": 1008, "spatial": 17 * 17 * SPATIAL_CHANNELS}
EXTRACTOR = "torch-fidelity inception-v3-compat (TF inception-2015-12-05)"


def check_weights(path: str | Path) -> Path:
    """The weights file, checked to exist and to hold only tensors (safe to unpickle)."""
    path = Path(path)
    if not path.is_file():
        raise LinaBenchError(f"Inception weights not found: {path}. lina-bench needs {WEIGHTS_NAME}, "
                             f"published with {WEIGHTS_SOURCE}; download it once and pass its path.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LinaBenchError(f"{path} is not a loadable weights file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise LinaBenchError(f"{path} does not hold Inception-v3 weights (no 'fc.weight'); expected {WEIGHTS_NAME}")
    return path


def random_inception_weights(path: str | Path, seed: int = 0) -> Path:
    """Save torch-fidelity's Inception-v3 with seeded random weights (Kaiming-normal convolutions, unit
    batch-norm statistics, so activations stay O(1) through its 90 layers), atomically; the same seed
    gives the same file. For tests and smoke suites: its features mean nothing."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class RandomInception(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs) -> None:  # keep the random initialisation
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = RandomInception("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
        for name, param in net.named_parameters():
            if name.endswith("conv.weight"):
                torch.nn.init.kaiming_normal_(param, nonlinearity="relu")
    data = io.BytesIO()
    torch.save(net.state_dict(), data)  # to memory: a file name would be recorded in the archive
    write_bytes_atomic(path, data.getvalue())
    return Path(path)


class InceptionFeatures(torch.nn.Module):
    """uint8 (B, 3, H, W) images -> {"pool": (B, 2048), "logits": (B, 1008), "spatial": (B, 2023)}."""

    def __init__(self, weights: str | Path, device: str = "cpu") -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = check_weights(weights)  # verified weights-only: torch-fidelity's own load is then safe
        try:
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                   feature_extractor_weights_path=str(path))
        except RuntimeError as exc:
            raise LinaBenchError(f"{path} does not fit torch-fidelity's Inception-v3: {exc}") from exc
        self.net.to(device)
        self.device = device
        self._spatial: torch.Tensor | None = None
        self.net.get_submodule(SPATIAL_MODULE).register_forward_hook(self._keep_spatial)

    def _keep_spatial(self, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # (B, 192, 17, 17) -> first 7 channels -> NHWC -> (B, 2023)
        self._spatial = output[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1).float()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise LinaBenchError(f"images must be uint8 (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        pool, logits = self.net(images.to(self.device))
        spatial, self._spatial = self._spatial, None
        return {"pool": pool.cpu(), "logits": logits.cpu(), "spatial": spatial.cpu()}
