"""dse app end to end in a real headless browser: upload, invert (with its progress bar), edit with a slider,
download, dse generate, then a direction file's edit; a long refinement stopped, then the next inversion.

Needs the app extra (gradio), selenium and Debian's chromium + chromium-driver (.ci/run installs them); skipped,
with the reason, only where one of them is missing. ``DSE_APP_SCREENSHOT=docs/app.png`` also saves the page's
screenshot there (the README's picture).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dse_core.cli import main

pytest.importorskip("gradio", reason="dse app needs the app extra: pip install 'dse-gan[app]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the dev extra)")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="no headless browser: apt-get install chromium chromium-driver")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digit-3.png"
REFINE_STEPS = 80
# as root in a sandbox, with no network: no first-run, sync or component traffic (each would be refused)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1300")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tmp_app(tmp_path_factory) -> Path:
    """The app's folder: its log, and its work folder (``work/``: its runs)."""
    return tmp_path_factory.mktemp("app")


@pytest.fixture(scope="module")
def app(tmp_app):
    """One page for the module, started as `dse app` is by default: every demo, BigGAN's first (PCA only)."""
    tmp_path = tmp_app
    port = _free_port()
    log = open(tmp_path / "app.log", "w")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "dse_core.cli", "app", "--port", str(port),
                                "--workdir", str(tmp_path / "work"), "--no-lpips", "--device", "cpu"],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"dse app did not start: {(tmp_path / 'app.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _toasts(driver, kind: str) -> list[str]:
    """The texts of gradio's notes of one kind on the page (``error``, ``warning``)."""
    texts = []
    for toast in driver.find_elements(By.CSS_SELECTOR, f".toast-body.{kind}"):
        try:
            texts.append(toast.text)
        except StaleElementReferenceException:  # closed meanwhile
            continue
    return texts


def _pick_model(driver, wait, label: str) -> None:
    driver.find_element(By.CSS_SELECTOR, "#model input").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"li[role=option][aria-label='{label}']"))[0].click()
    family = label.split()[0]
    wait.until(lambda d: d.find_element(By.ID, "model-info").text.startswith(f"{family} generator"))


def _progress_text(driver) -> str:
    """What gradio's progress bars say (its status tracker's ``.progress-level``: one per tqdm bar, desc and count)."""
    texts = []
    for level in driver.find_elements(By.CSS_SELECTOR, ".progress-level"):
        try:
            bar = level.find_element(By.CSS_SELECTOR, "[role=progressbar]")
            texts += [level.text, bar.get_attribute("aria-valuetext") or ""]
        except StaleElementReferenceException:  # redrawn at every step
            continue
    return " ".join(texts)


def _image(url: str, path: Path) -> np.ndarray:
    urllib.request.urlretrieve(url, path)
    return _image_file(path)


def _image_file(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _settled(driver, wait, css: str = "#edited img", quiet: float = 1.5) -> str:
    """The image's URL once no re-render has replaced it for ``quiet`` seconds (one control fires several)."""
    last, since = None, time.monotonic()

    def still(d):
        nonlocal last, since
        src = d.find_element(By.CSS_SELECTOR, css).get_attribute("src")
        if src != last:
            last, since = src, time.monotonic()
        return src if time.monotonic() - since >= quiet else False
    return wait.until(still)


def _invert_example_with_latents_refinement(browser, wait, steps: int) -> None:
    """On the stylegan2 demo: upload the example, pick latent refinement with ``steps`` steps, press Invert."""
    wait.until(lambda d: "biggan" in d.find_element(By.ID, "model-info").text)
    _pick_model(browser, wait, "stylegan2 demo")
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(EXAMPLE))
    wait.until(lambda d: "digit-3" in d.find_element(By.ID, "upload").text)
    browser.find_element(By.XPATH, "//*[@id='refine']//label[contains(., 'latents')]").click()
    field = browser.find_element(By.CSS_SELECTOR, "#steps input[type=number]")
    field.clear()
    field.send_keys(str(steps), Keys.TAB)
    browser.find_element(By.ID, "invert").click()


def test_switching_models_and_directions_raises_no_error(app, browser, tmp_path):
    wait = WebDriverWait(browser, 60)
    browser.get(app)  # the first page of this app: BigGAN's directions are made now, with PCA's one note
    wait.until(lambda d: "biggan" in d.find_element(By.ID, "model-info").text)
    wait.until(lambda d: _toasts(d, "warning"))
    time.sleep(1.5)  # a second note would be here by now
    warnings = _toasts(browser, "warning")
    assert len(warnings) == 1 and warnings[0].count("isotropic") == 1, warnings
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Edit')]").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#component-1 input").get_attribute("value") == "1: pca-1")
    # BigGAN is conditional: a class move, with its own target and slider in place of the component rows
    browser.find_element(By.XPATH, "//*[@id='method']//label[contains(., 'class')]").click()
    wait.until(lambda d: d.find_elements(By.ID, "to-class") and not d.find_elements(By.ID, "component-0"))
    assert browser.find_elements(By.ID, "class-strength") and not _toasts(browser, "error")
    for label in ("stylegan demo", "stylegan2 demo", "pggan demo"):  # new directions, new choices for each
        _pick_model(browser, wait, label)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#component-1 input").get_attribute("value")
                   == "1: sefa-1")
        time.sleep(1)  # the errors came from events fired after the update
        assert not _toasts(browser, "error"), label
    assert not browser.find_elements(By.ID, "layers")  # PGGAN: z only, no layer range
    assert not browser.find_elements(By.ID, "to-class")  # unconditional: no class move
    browser.find_element(By.XPATH, "//*[@id='method']//label[contains(., 'file')]").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#direction-file input[type=file]"))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#component-1 input").get_attribute("value") == "")
    bad = tmp_path / "smile.npy"
    bad.write_bytes(b"not a direction")
    browser.find_element(By.CSS_SELECTOR, "#direction-file input[type=file]").send_keys(str(bad))
    wait.until(lambda d: _toasts(d, "error"))
    time.sleep(1)
    errors = _toasts(browser, "error")
    assert len(errors) == 1 and "smile.npy" in errors[0] and "list of choices" not in errors[0], errors


def test_upload_invert_edit_download_generate(app, browser, tmp_path):
    wait = WebDriverWait(browser, 120)
    browser.get(app)
    # with refinement: long enough (a few seconds on one CPU thread) for gradio's progress bar to show its steps
    _invert_example_with_latents_refinement(browser, wait, REFINE_STEPS)
    # the refinement's own steps, as its tqdm bar counts them, while it runs
    WebDriverWait(browser, 60, poll_frequency=0.05).until(
        lambda d: "refining" in (text := _progress_text(d)) and f"/ {REFINE_STEPS} step" in text)
    wait.until(lambda d: "PSNR" in d.find_element(By.ID, "metrics").text)
    assert not browser.find_elements(By.CSS_SELECTOR, ".progress-level")  # gone with the result
    assert f"--refine latents --refine-steps {REFINE_STEPS}" in browser.find_element(By.ID, "command").text
    row = next(line for line in browser.find_element(By.ID, "metrics").text.splitlines() if line.startswith("digit-3"))
    psnr = float(row.split()[1])
    assert 15 < psnr < 40
    assert browser.find_element(By.ID, "command").text.count("dse invert --gan stylegan2") == 1

    # the latents, downloaded from the page, decode with dse generate to the page's reconstruction
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")]
    latents = tmp_path / "digit-3.safetensors"
    urllib.request.urlretrieve(next(h for h in links if h.endswith("/digit-3.safetensors")), latents)
    reconstruction = _image(next(h for h in links if h.endswith("/digit-3.png")), tmp_path / "rec.png")
    assert main(["generate", str(latents), "-o", str(tmp_path / "gen")]) == 0
    generated = np.asarray(Image.open(next((tmp_path / "gen").rglob("*.png"))).convert("RGB")).astype(int)
    assert np.abs(generated - reconstruction).max() <= 1

    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Edit')]").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#edited img"))
    before_url = browser.find_element(By.CSS_SELECTOR, "#edited img").get_attribute("src")
    before = _image(before_url, tmp_path / "before.png")
    assert np.abs(before - reconstruction).max() <= 1  # strength 0: the reconstruction itself
    slider = browser.find_element(By.CSS_SELECTOR, "#strength-0 input[type=range]")
    ActionChains(browser).click_and_hold(slider).move_by_offset(120, 0).release().perform()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#edited img").get_attribute("src") != before_url)
    assert float(slider.get_attribute("value")) > 0
    after = _image(browser.find_element(By.CSS_SELECTOR, "#edited img").get_attribute("src"), tmp_path / "after.png")
    assert np.abs(after - before).mean() > 2  # the edit changed the image

    browser.find_element(By.ID, "save-edit").click()
    wait.until(lambda d: "dse edit" in d.find_element(By.ID, "edit-command").text)
    saved = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#edit-downloads a")]
    assert np.abs(_image(next(h for h in saved if h.endswith(".png")), tmp_path / "saved.png") - after).max() <= 1

    shot = Path(os.environ.get("DSE_APP_SCREENSHOT") or tmp_path / "page.png")
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    # a direction file (dse directions' own), uploaded: its slider edits as dse edit does with that file
    assert main(["directions", "--gan", "stylegan2", "--method", "pca", "-n", "3", "-o", str(tmp_path / "pca")]) == 0
    browser.find_element(By.XPATH, "//*[@id='method']//label[contains(., 'file')]").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#direction-file input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, "#direction-file input[type=file]").send_keys(
        str(tmp_path / "pca" / "direction.safetensors"))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#component-0 input").get_attribute("value") == "0: pca-0")
    shown = _settled(browser, wait)
    ActionChains(browser).click_and_hold(slider).move_by_offset(-250, 0).release().perform()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#edited img").get_attribute("src") != shown)
    strength = float(slider.get_attribute("value"))
    assert strength < 0
    edited = _image(_settled(browser, wait), tmp_path / "file-edit.png")
    assert main(["edit", str(latents), "--direction", str(tmp_path / "pca" / "direction.safetensors"),
                 "--strength", f"{strength:g}", "-o", str(tmp_path / "cli-edit")]) == 0
    assert np.abs(edited - _image_file(next((tmp_path / "cli-edit" / "digit-3").glob("00_*.png")))).max() <= 1
    assert np.abs(edited - after).mean() > 2  # not the SeFa edit any more
    browser.find_element(By.ID, "save-edit").click()  # replayable: the command names the page's copy of the file
    wait.until(lambda d: "/directions/file-" in d.find_element(By.ID, "edit-command").text)


def test_stop_ends_a_long_refinement_and_the_next_inversion_runs(app, tmp_app, browser):
    wait = WebDriverWait(browser, 60)
    browser.get(app)
    before = set((tmp_app / "work").glob("run-*"))
    _invert_example_with_latents_refinement(browser, wait, 300)  # a minute or more on one CPU thread
    WebDriverWait(browser, 60, poll_frequency=0.05).until(lambda d: "/ 300 step" in _progress_text(d))
    browser.find_element(By.ID, "stop").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".progress-level"))
    time.sleep(1.5)  # a note would be here by now
    assert browser.find_element(By.ID, "metrics").text == "" and not _toasts(browser, "error")  # nothing of it shown
    # the Studio is free at once: a short inversion runs now, not after the 300 steps
    browser.find_element(By.XPATH, "//*[@id='refine']//label[contains(., 'none')]").click()
    browser.find_element(By.ID, "invert").click()
    WebDriverWait(browser, 30).until(lambda d: "PSNR" in d.find_element(By.ID, "metrics").text)
    assert "--refine" not in browser.find_element(By.ID, "command").text
    made = set((tmp_app / "work").glob("run-*")) - before
    assert len(made) == 1 and (made.pop() / "out" / "metrics.json").is_file()  # the stopped run left no folder
