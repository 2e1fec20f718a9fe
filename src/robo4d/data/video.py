"""mp4 video through PyAV: an appending h264 writer and a frame-accurate, per-process cached reader.

Episodes are concatenated in one file; an episode is the frames whose timestamps lie in
[from_timestamp, to_timestamp). Frames are located by presentation time converted to a frame number
(round(t * fps)), so decoding is exact whatever the container's time base.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import av
import numpy as np

from robo4d.data.errors import DatasetError

CODEC = "h264"
PIX_FMT = "yuv420p"


class VideoFileWriter:
    """Appends (T, H, W, 3) uint8 RGB episodes to one h264 mp4 file; timestamps continue across episodes."""

    def __init__(self, path: Path, *, fps: int, height: int, width: int, crf: int, gop: int) -> None:
        if height % 2 or width % 2:
            raise DatasetError(f"{path}: {PIX_FMT} video needs even height and width, got {height}x{width}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fps = fps
        self.frames_written = 0
        self._bytes = 0  # encoded payload so far; the muxer buffers, so the file on disk lags behind
        self._container = av.open(str(path), mode="w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, PIX_FMT
        # No B-frames keeps decode order == display order (simple, exact seeking); one thread makes the
        # bitstream independent of the machine's core count, so files are reproducible.
        self._stream.options = {"crf": str(crf), "g": str(gop), "bf": "0", "threads": "1"}

    def append(self, frames: np.ndarray) -> tuple[float, float]:
        """Encode one episode; returns its (from_timestamp, to_timestamp) in seconds within this file."""
        start = self.frames_written
        for frame in frames:  # (H, W, 3) uint8
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = self.frames_written
            packets = self._stream.encode(vf)
            self._bytes += sum(p.size for p in packets)
            self._container.mux(packets)
            self.frames_written += 1
        return start / self.fps, self.frames_written / self.fps

    def size_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))  # flush delayed frames
        self._container.close()


def probe(path: Path) -> dict[str, Any]:
    """Stream facts of an mp4: frames, duration_s, height, width, codec, pix_fmt, fps."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{path}: no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
            return {
                "frames": int(stream.frames),
                "duration_s": duration,
                "height": ctx.height,
                "width": ctx.width,
                "codec": ctx.name,
                "pix_fmt": ctx.pix_fmt,
                "fps": float(stream.average_rate) if stream.average_rate else 0.0,
            }
    except (av.error.FFmpegError, OSError) as e:
        raise DatasetError(f"{path}: cannot open video ({e}); the file is missing, truncated or corrupt") from e


_INHERITED: list[Any] = []  # containers opened by a parent process; kept alive, never touched


class VideoDecoders:
    """Open PyAV containers, one per file, cached per process (a forked DataLoader worker opens its own).

    Containers are opened lazily on first use, so a Dataset can be pickled to workers before any read.
    """

    def __init__(self, max_open: int = 16) -> None:
        self.max_open = max_open
        self._pid = -1
        self._open: OrderedDict[str, Any] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open, "_pid": -1, "_open": OrderedDict()}

    def _container(self, path: Path) -> Any:
        if self._pid != os.getpid():
            # Forked: the parent's containers share file offsets, so they are never reused. Nor are they
            # closed: closing joins decoder threads that do not exist in this process and hangs forever.
            _INHERITED.extend(self._open.values())
            self._open = OrderedDict()
            self._pid = os.getpid()
        key = str(path)
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key]
        try:
            container = av.open(key)
        except (av.error.FFmpegError, OSError) as e:
            raise DatasetError(f"{path}: cannot open video ({e}); missing, truncated or corrupt") from e
        # One decoding thread: parallelism comes from DataLoader workers, and fewer threads make forking safe.
        container.streams.video[0].thread_count = 1
        self._open[key] = container
        if len(self._open) > self.max_open:
            self._open.popitem(last=False)[1].close()
        return container

    def decode(
        self,
        path: Path,
        *,
        fps: int,
        from_timestamp: float,
        frame_indices: np.ndarray,
        expected_hw: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Frames `frame_indices` (sorted or not, within one episode starting at `from_timestamp`) as
        (n, H, W, 3) uint8. Seeks once to the keyframe before the earliest frame, then decodes forward.
        A frame whose size is not `expected_hw` (the declared (H, W)) is an error, never returned as is."""
        container = self._container(path)
        stream = container.streams.video[0]
        base = round(from_timestamp * fps)  # the episode's first frame number in this file
        wanted = np.unique(frame_indices) + base  # (u,) sorted file frame numbers
        target = int(wanted[0] / fps / stream.time_base)
        wanted_set = set(wanted.tolist())
        found: dict[int, np.ndarray] = {}
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                number = round(float(frame.pts * stream.time_base) * fps)
                if number > wanted[-1]:
                    break
                if number in wanted_set:
                    if expected_hw is not None and (frame.height, frame.width) != tuple(expected_hw):
                        raise DatasetError(
                            f"{path}: file frame {number} (episode frame {number - base}) decodes to "
                            f"{frame.height}x{frame.width} (HxW) but meta/info.json declares "
                            f"{expected_hw[0]}x{expected_hw[1]}; the video does not match the dataset's metadata"
                        )
                    found[number] = frame.to_ndarray(format="rgb24")
                if len(found) == len(wanted):
                    break
        except av.error.FFmpegError as e:
            raise DatasetError(f"{path}: video decoding failed near {wanted[0] / fps:.3f}s ({e})") from e
        missing = [int(n) for n in wanted if n not in found]
        if missing:
            raise DatasetError(
                f"{path}: video has no frame at {missing[0] / fps:.3f}s (file frame {missing[0]}); "
                f"the file is truncated or does not match meta/episodes"
            )
        frames = np.stack([found[int(n)] for n in wanted])  # (u, H, W, 3)
        return frames[np.searchsorted(wanted, np.asarray(frame_indices) + base)]
