"""The embedded demo: `dse invert --gan stylegan2 IMAGE` works offline and reconstructs digits."""

from pathlib import Path

from dse_core.testing import check_demo
from dse_plugin_stylegan2 import FAMILY

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_demo_inverts_its_samples_and_the_shipped_examples(tmp_path, capsys):
    report = check_demo(FAMILY, EXAMPLES, tmp_path,
                        psnr_samples=20,  # 22.9 dB measured on 256 held-out seeds
                        psnr_images=16)  # 20.6 dB measured
    assert sorted(Path(row["image"]).stem for row in report["images"]) == ["digit-2", "digit-3", "digit-5", "digit-8"]
    assert "LPIPS metric skipped" in capsys.readouterr().err  # no VGG16 weights in the test environment
