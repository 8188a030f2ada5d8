"""The contracts, run over every installed GAN family on its own tiny config (timm's one test over the registry)."""

import pytest

from dse_core import get_host
from dse_core.testing import check_generator_contract

FAMILIES = sorted(get_host().families.values(), key=lambda f: f.name)


def test_the_project_s_families_are_installed():
    assert "stylegan2" in {f.name for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_installed_family_keeps_the_generator_and_encoder_contracts(family, tmp_path):
    assert family.tiny_config is not None, (
        f"GanFamily {family.name!r} ({family.package}) carries no tiny_config: set one so the contract tests can run it")
    check_generator_contract(family, family.tiny_config, tmp_path)
