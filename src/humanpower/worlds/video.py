"""Writing rollouts (sequences of RGB frames) as GIF or MP4. Environment-agnostic.

Frames are ``uint8`` arrays ``(H, W, 3)``. Frames of different sizes (e.g. captions wrapped onto more lines)
are padded with white at the bottom and right to the largest size, so every frame of a video has one size.
MP4 goes through imageio-ffmpeg (which ships its own ffmpeg binary) with H.264 / yuv420p; its frames are
additionally padded to a multiple of 16 pixels (ffmpeg's macro block), never rescaled.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import imageio.v2 as imageio_v2
import imageio.v3 as iio
import numpy as np
from numpy.typing import NDArray

from humanpower.errors import UserError

Frame = NDArray[np.uint8]
MACRO_BLOCK = 16
PAD_VALUE = 255
VIDEO_SUFFIXES = (".gif", ".mp4")


def _prepare(frames: Iterable[Frame], multiple: int = 1) -> list[Frame]:
    """Check the frames and pad them (white, bottom/right) to one common size, a multiple of ``multiple``."""
    out = [np.asarray(f) for f in frames]
    if not out:
        raise ValueError("no frames to write")
    for i, f in enumerate(out):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"frame {i}: expected a uint8 array (H, W, 3), got {f.dtype} {f.shape}")
    height = max(f.shape[0] for f in out)
    width = max(f.shape[1] for f in out)
    height = -(-height // multiple) * multiple
    width = -(-width // multiple) * multiple
    padded = []
    for f in out:
        if f.shape[:2] == (height, width):
            padded.append(f)
        else:
            canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
            canvas[: f.shape[0], : f.shape[1]] = f
            padded.append(canvas)
    return padded


def _check_fps(fps: float) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")


def write_gif(frames: Iterable[Frame], path: str | Path, fps: float = 4) -> Path:
    """Write an endlessly looping GIF at ``fps`` frames per second; returns the path."""
    _check_fps(fps)
    path = Path(path)
    stack = np.stack(_prepare(frames))
    iio.imwrite(path, stack, extension=".gif", duration=round(1000 / fps), loop=0)
    return path


def write_mp4(frames: Iterable[Frame], path: str | Path, fps: float = 4) -> Path:
    """Write an H.264 MP4 (yuv420p, plays everywhere) at ``fps`` frames per second; returns the path."""
    _check_fps(fps)
    path = Path(path)
    prepared = _prepare(frames, MACRO_BLOCK)
    writer = imageio_v2.get_writer(
        path,
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=MACRO_BLOCK,
        ffmpeg_log_level="error",
    )
    try:
        for f in prepared:
            writer.append_data(f)
    finally:
        writer.close()
    return path


def write_video(frames: Iterable[Frame], path: str | Path, fps: float = 4) -> Path:
    """Write ``frames`` as GIF or MP4, chosen by the suffix of ``path`` (``.gif`` / ``.mp4``)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return write_gif(frames, path, fps)
    if suffix == ".mp4":
        return write_mp4(frames, path, fps)
    raise UserError(f"{path}: unknown video format {suffix or '(no suffix)'!r}; use .gif or .mp4")


__all__ = ["VIDEO_SUFFIXES", "write_gif", "write_mp4", "write_video"]
