"""LPIPS(VGG) without downloads: the backbone's ImageNet weights come from a file the user has.

The ``lpips`` package would fetch torchvision's VGG16 on first use; dse builds it
with a random backbone instead (``pnet_rand=True``) and then loads ImageNet VGG16
weights from, in order: an explicit local file, a Hugging Face Hub repo, or
torchvision's own cache. The linear heads ship inside the ``lpips`` package and
always load offline. With no backbone found this is an error, unless the caller
accepts an untrained backbone (``allow_untrained=True``); the returned module's
``trained`` flag says which, so runs can record it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DseError, DseWarning
from ..interfaces import LossTerm
from ..models.convert import check_tensors
from .vgg_weights import find_vgg16, read_state_dict



class UntrainedLPIPSWarning(DseWarning):
    """LPIPS runs on a randomly initialised VGG16: its values are not the published metric."""


class FrozenLPIPS(nn.Module, LossTerm):
    """LPIPS as a loss term: (N,) distances, always in eval mode, no parameter ever trains.

    Gradients still flow to the images. ``trained`` is False when the backbone is
    random; ``source`` names where the backbone weights came from.
    """

    name = "lpips"

    def __init__(self, net: nn.Module, trained: bool, source: str):
        super().__init__()
        self.net = net.requires_grad_(False)
        self._fast = _plain_lpips(net)  # an lpips.LPIPS whose forward this class re-implements (see forward)
        if self._fast:
            # forward feeds the trunk channels-last: its weights stored so too are not re-laid-out every call
            net.net.to(memory_format=torch.channels_last)
        self.trained = trained
        self.source = source
        self.train(False)

    def train(self, mode: bool = True) -> "FrozenLPIPS":
        return super().train(False)  # the linear heads have dropout: never switch it on

    def forward(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        if not self._fast:
            return self.net(x, x_rec).reshape(x.shape[0])
        # lpips.LPIPS.forward (v0.1, linear heads, spatial average), computed with fewer passes:
        # - the trunk runs channels-last (its weights are stored so): oneDNN convolves ~1.2x faster on CPU;
        # - the target's features are taken without autograd when it needs no gradient;
        # - each layer's distance to the reconstruction is one autograd node with a hand-written
        #   backward (4 passes over the feature map where autograd's chain of norm, divide,
        #   subtract, square and 1x1 conv takes about a dozen).
        if x.requires_grad:
            return self._plain_forward(x, x_rec)
        with torch.no_grad():
            units0 = [_unit(f) for f in self._trunk(x)]
        val = 0
        for kk, (u0, f1) in enumerate(zip(units0, self._trunk(x_rec))):
            val += _LayerDistance.apply(f1, u0, self.net.lins[kk].model[-1].weight)
        return val.reshape(x.shape[0])

    def _plain_forward(self, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        """The same distance with autograd throughout (gradients for both images)."""
        val = 0
        for kk, (f0, f1) in enumerate(zip(self._trunk(x), self._trunk(x_rec))):
            val += self.net.lins[kk]((_unit(f0) - _unit(f1)) ** 2).mean([2, 3], keepdim=True)
        return val.reshape(x.shape[0])

    def _trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The trunk's feature maps of an image batch in [-1, 1], channels-last."""
        return list(self.net.net(self.net.scaling_layer(x).contiguous(memory_format=torch.channels_last)))

    def extra_repr(self) -> str:
        return f"trained={self.trained}, source={self.source!r}"


def _plain_lpips(net: nn.Module) -> bool:
    """An ``lpips.LPIPS`` v0.1 with bias-free 1x1 linear heads and a scalar output: what ``forward`` re-implements."""
    try:
        import lpips
    except ImportError:  # pragma: no cover - lpips is a dependency
        return False
    if not (isinstance(net, lpips.LPIPS) and net.version == "0.1" and net.lpips and not net.spatial
            and len(net.lins) == net.L):
        return False
    heads = [lin.model[-1] for lin in net.lins]
    return all(isinstance(h, nn.Conv2d) and h.out_channels == 1 and h.kernel_size == (1, 1) and h.bias is None
               for h in heads)


_EPS = 1e-10  # lpips.normalize_tensor's


def _unit(f: torch.Tensor) -> torch.Tensor:
    """lpips' ``normalize_tensor``: f / (sqrt(sum of squares over channels) + 1e-10), the norm in one kernel."""
    return f / (torch.linalg.vector_norm(f, dim=1, keepdim=True) + _EPS)


class _LayerDistance(torch.autograd.Function):
    """One LPIPS layer: mean over H, W of sum_c w_c (u0 - unit(f1))^2, as (N, 1, 1, 1); gradient for f1 only.

    With D = |f1| + eps and u1 = f1 / D, the gradient of the distance is
    gu = -2 w d g / (H W) for d = u0 - u1, then df1 = (gu - f1 <gu, f1> / (|f1| D)) / D; where f1 is
    all zeros the second term is taken as 0 (autograd through lpips' own sqrt gives NaN there).
    """

    @staticmethod
    def forward(ctx, f1: torch.Tensor, u0: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(f1, dim=1, keepdim=True)
        denom = norm + _EPS
        d = u0 - f1 / denom
        ctx.save_for_backward(f1, norm, denom, d, weight)
        return F.conv2d(d**2, weight).mean([2, 3], keepdim=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        f1, norm, denom, d, weight = ctx.saved_tensors
        n, c, h, w = f1.shape
        gu = d * (weight.reshape(1, c, 1, 1) * grad.reshape(n, 1, 1, 1) * (-2.0 / (h * w)))
        coef = (torch.linalg.vecdot(gu, f1, dim=1).unsqueeze(1) / (norm * denom)).masked_fill_(norm == 0, 0)
        return torch.addcmul(gu, f1, coef, value=-1) / denom, None, None


def load_lpips(
    weights: str | Path | None = None,
    hub_repo: str | None = None,
    hub_filename: str = "model.safetensors",
    *,
    allow_untrained: bool = False,
) -> FrozenLPIPS:
    """LPIPS(VGG) with ImageNet backbone weights from ``weights``, else ``hub_repo``, else torchvision's cache.

    ``weights``: a torchvision ``vgg16`` state dict (whole model or its ``features``),
    ``.pth`` or ``.safetensors``; a missing file is an error. ``hub_repo``
    (``owner/name[@revision]``): ``hub_filename`` is fetched with ``hf_hub_download``,
    from the cache only when ``HF_HUB_OFFLINE`` is set. Finally
    ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``. Nothing found: :class:`DseError`,
    or with ``allow_untrained`` one :class:`UntrainedLPIPSWarning` and ``trained=False``.
    """
    found = find_vgg16(weights, hub_repo, hub_filename, needed_by="LPIPS", allow_untrained=allow_untrained,
                       warning=UntrainedLPIPSWarning, untrained_means="its values are not the published LPIPS metric")
    if found is None:
        return FrozenLPIPS(_untrained_lpips(), trained=False, source="untrained")
    path, source = found
    state = read_state_dict(path)
    model = _untrained_lpips()
    _load_backbone(model.net, state, path)
    return FrozenLPIPS(model, trained=True, source=source)


def lpips_for_command(weights: str | None, hub_repo: str | None, allow_untrained: bool, skip: str) -> FrozenLPIPS:
    """:func:`load_lpips` for a command: its error says how to give weights in options, or ``skip`` LPIPS."""
    try:
        return load_lpips(weights, hub_repo=hub_repo, allow_untrained=allow_untrained)
    except DseError as exc:  # the library's hint names Python arguments; say it in options
        raise DseError(exc.message, hint="pass --lpips-weights FILE (a torchvision vgg16 state dict) or --lpips-hub REPO "
                       f"(e.g. timm/vgg16.tv_in1k); or --allow-untrained-lpips (recorded), or {skip}") from None


def _untrained_lpips() -> nn.Module:
    import lpips

    heads = Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"
    if not heads.is_file():
        raise DseError(f"the lpips package has no linear-layer weights at {heads}", hint="reinstall lpips (pip install lpips)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision: "'pretrained' is deprecated"
        return lpips.LPIPS(net="vgg", pnet_rand=True, pretrained=True, model_path=str(heads), verbose=False)


def _load_backbone(backbone: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Copy torchvision ``features.{i}`` (or bare ``{i}``) tensors into lpips' ``slice{k}.{i}``, every key and shape checked."""
    features = {f"features.{key.removeprefix('module.').removeprefix('features.')}": value for key, value in state.items()}
    wanted = {f"features.{key.split('.', 1)[1]}": key for key in backbone.state_dict()}  # "slice2.5.weight" -> features.5.weight
    expected = {name: tuple(backbone.state_dict()[key].shape) for name, key in wanted.items()}
    check_tensors(path, "not a torchvision vgg16 state dict",
                  {name: tuple(features[name].shape) for name in wanted if name in features}, expected)
    backbone.load_state_dict({key: features[name] for name, key in wanted.items()})
