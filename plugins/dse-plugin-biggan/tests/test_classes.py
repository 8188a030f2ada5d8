"""The ImageNet class names a 1000-class BigGAN gets, offline from torchvision's metadata, and classes by name."""

import pytest
import torch

from dse_core.errors import DseError, UnknownNameError
from dse_plugin_biggan.classes import imagenet_class_names
from dse_plugin_biggan.model import BigGANConfig, Generator


def tiny(c_dim: int) -> Generator:
    return Generator(BigGANConfig(resolution=8, channels=(16, 8), upsample=(True,), attention=None, z_dim=4,
                                  embed_dim=4, c_dim=c_dim, n_stats=3))


def test_the_imagenet_names_are_the_1000_classes_in_index_order():
    names = imagenet_class_names()
    assert len(names) == 1000 and all(isinstance(n, str) and n for n in names)
    assert (names[0], names[1], names[207], names[292], names[999]) == (
        "tench", "goldfish", "golden retriever", "tiger", "toilet tissue")
    assert imagenet_class_names() is names  # cached


def test_a_1000_class_biggan_takes_imagenet_names():
    G = tiny(1000)
    assert G.class_names == imagenet_class_names()
    c = G.class_vector(["golden_retriever", "Golden Retriever", "207", "tiger", "sulphur crested cockatoo"])
    assert c.shape == (5, 1000) and c.sum(dim=1).tolist() == [1.0] * 5
    assert c.argmax(dim=1).tolist() == [207, 207, 207, 292, 89]
    # "Cardigan" (264, the corgi) and "cardigan" (474, the sweater): exact names pick one, a loose one is ambiguous
    assert G.class_vector(["Cardigan", "cardigan"]).argmax(dim=1).tolist() == [264, 474]
    with pytest.raises(DseError, match="class 'CARDIGAN' is ambiguous: 264 'Cardigan', 474 'cardigan'"):
        G.class_vector(["CARDIGAN"])


def test_a_misspelt_imagenet_class_gets_close_names_not_a_list_of_1000():
    G = tiny(1000)
    with pytest.raises(UnknownNameError) as err:
        G.class_vector(["golden retriver"])
    message = str(err.value)
    assert message.startswith("unknown biggan class 'golden retriver'; did you mean 'golden retriever'")
    assert "(1000 known)" in message and "tench" not in message
    assert err.value.hint == "or give the class index 0..999"
    with pytest.raises(DseError, match=r"class 1000: the biggan generator has classes 0\.\.999"):
        G.class_vector(["1000"])


def test_other_class_counts_have_no_names():
    G = tiny(3)
    assert G.class_names is None
    assert torch.equal(G.class_vector(["2"]), torch.tensor([[0.0, 0.0, 1.0]]))
    with pytest.raises(UnknownNameError, match="no names: give the class index 0..2"):
        G.class_vector(["tiger"])
