"""The 1000 ImageNet class names, in the order BigGAN's class vectors use (index 207 is "golden retriever").

They come from torchvision's weights metadata, which ships with torchvision (a dependency of dse): nothing is
downloaded, and torchvision is imported only when the names are first asked for.
"""

from __future__ import annotations

from functools import cache


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The ImageNet-1k class names, index order (torchvision's ``categories``: one short name per class)."""
    from torchvision.models import ResNet50_Weights  # lazy: torchvision is slow to import

    names = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != 1000:  # a torchvision that changed its metadata: fail here, not as a wrong class later
        raise RuntimeError(f"torchvision lists {len(names)} ImageNet classes, not 1000")
    return names
