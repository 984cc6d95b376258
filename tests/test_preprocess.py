"""Frame preprocessing on hand-made arrays and on real game frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mdnworld.env import FRAME_SHAPE, TakeCoverEnv, preprocess_frame


def _reference(screen: np.ndarray) -> np.ndarray:
    """Stretch-then-resize in float: the SPEC's order of operations."""
    x = screen.astype(np.float32)
    x = (x - x.min()) / (x.max() - x.min())
    return cv2.resize(x, (64, 64), interpolation=cv2.INTER_LINEAR) * 255


def test_constant_frame_is_zero() -> None:
    out = preprocess_frame(np.full((120, 160, 3), 77, np.uint8))
    assert out.shape == FRAME_SHAPE and out.dtype == np.uint8 and not out.any()


def test_gradient_is_stretched_and_resized() -> None:
    ramp = np.linspace(40, 120, 160).round().astype(np.uint8)
    screen = np.repeat(np.repeat(ramp[None, :, None], 120, 0), 3, 2)
    out = preprocess_frame(screen)
    assert out.shape == FRAME_SHAPE
    assert np.all(out == out[:1])  # every row equal
    assert np.all(out[..., 0] == out[..., 2])  # grey stays grey
    assert np.all(np.diff(out[0, :, 0].astype(int)) >= 0)  # monotone
    assert out.min() <= 4 and out.max() >= 251  # stretched to the full range
    assert np.abs(out.astype(float) - _reference(screen)).max() <= 255 / 80


@pytest.mark.parametrize(("lo", "hi"), [(0, 256), (30, 200)])
def test_resize_then_stretch_equals_stretch_then_resize(lo: int, hi: int) -> None:
    """Equal up to rounding: the resize rounds to uint8 before the stretch scales it, so the
    error stays within one input grey level (``scale`` output levels)."""
    rng = np.random.default_rng(0)
    screen = rng.integers(lo, hi, (120, 160, 3), dtype=np.uint8)
    scale = 255 / (int(screen.max()) - int(screen.min()))
    err = np.abs(preprocess_frame(screen).astype(float) - _reference(screen)).max()
    assert err <= scale + 0.5  # + the final rounding to uint8


@pytest.mark.parametrize(
    "bad", [np.zeros((120, 160), np.uint8), np.zeros((120, 160, 3), np.float32)]
)
def test_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess_frame(bad)


def _largest_bright_object(frame: np.ndarray) -> int:
    """Pixel area of the largest bright blob (SPEC §6 fireball mask) in an RGB uint8 frame."""
    x = frame.astype(np.float32) / 255
    grey = 0.2125 * x[..., 0] + 0.7154 * x[..., 1] + 0.0721 * x[..., 2]
    labels, n = ndimage.label(ndimage.binary_fill_holes(grey > 0.65))
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0


def _pillow_bilinear(raw: np.ndarray) -> np.ndarray:
    """The anti-aliased alternative (Pillow's bilinear), as a reference."""
    x = raw.astype(np.float32)
    x = (x - x.min()) / max(float(x.max() - x.min()), 1.0) * 255
    return np.asarray(Image.fromarray(x.astype(np.uint8)).resize((64, 64), Image.BILINEAR))


@pytest.mark.slow
def test_small_fireballs_survive_resize() -> None:
    """INTER_LINEAR has no anti-aliasing: check that real fireballs are not lost by it.

    Over real frames, whenever the stretched 160x120 screen shows a bright object of at least
    8 pixels (about 1.7 pixels once shrunk 2.5 x 1.9 times), the 64x64 frame must still show a
    bright object; single bright specks may vanish, as they do with Pillow's anti-aliased
    bilinear, which must not do better than ours.
    """
    env = TakeCoverEnv()
    seen = kept = kept_pillow = 0
    for seed in range(3):
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        done = False
        while not done:
            raw = env.render()
            lo, hi = int(raw.min()), int(raw.max())
            stretched = ((raw.astype(np.float32) - lo) / max(hi - lo, 1) * 255).astype(np.uint8)
            if _largest_bright_object(stretched) >= 8:
                seen += 1
                kept += _largest_bright_object(preprocess_frame(raw)) > 0
                kept_pillow += _largest_bright_object(_pillow_bilinear(raw)) > 0
            _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 1))
            done = term or trunc
    env.close()
    assert seen > 50
    assert kept / seen >= 0.95, f"bright objects kept in only {kept}/{seen} frames"
    assert kept >= kept_pillow
