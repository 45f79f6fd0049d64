"""What a video job reports while it runs: frames done of the total, speed and time left."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["VideoProgress", "VideoProgressCallback"]


@dataclass(frozen=True)
class VideoProgress:
    """One progress report of :func:`~upscaler_edge.video.upscale_video`.

    ``frames_done`` counts output frames upscaled so far, including ``frames_resumed`` taken
    from an earlier run's finished segments; ``frame_fraction`` adds the finished tiles of
    the frame in work (0 <= it < 1), for smooth bars on slow frames. ``frames_total`` comes
    from the container (exact for MP4/MOV, estimated from the duration elsewhere) and is None
    when unknown; an estimate is corrected at the end. ``fps`` is this run's upscaling speed
    over the last few seconds, ``eta_seconds`` the time left at that speed (None while
    unknown). ``phase`` is ``"upscaling"``, then ``"joining"`` while the finished segments
    and the copied streams are written into the output, then ``"done"``. Picklable.
    """

    frames_done: int
    frames_total: int | None
    fps: float
    eta_seconds: float | None
    elapsed_seconds: float
    frames_resumed: int = 0
    segments_done: int = 0
    phase: str = "upscaling"
    frame_fraction: float = 0.0


#: Called from the thread that called ``upscale_video``; keep it quick (emit a signal, store).
VideoProgressCallback = Callable[[VideoProgress], None]


class _Meter:
    """Frames per second over a sliding window of recent frames, and the time left."""

    def __init__(self, total: int | None, resumed: int, window: float = 5.0) -> None:
        self.total, self.resumed, self.window = total, resumed, window
        self.started = time.perf_counter()
        self._marks: deque[tuple[float, int]] = deque([(self.started, resumed)])

    def report(
        self, done: int, segments: int, phase: str = "upscaling", fraction: float = 0.0
    ) -> VideoProgress:
        now = time.perf_counter()
        self._marks.append((now, done))
        while len(self._marks) > 2 and now - self._marks[1][0] > self.window:
            self._marks.popleft()
        t0, n0 = self._marks[0]
        fps = (done - n0) / (now - t0) if now > t0 and done > n0 else 0.0
        total = self.total
        if total is not None and done > total:
            total = done  # the container's estimate was short
        eta = None
        if total is not None and fps > 0:
            eta = max(0.0, (total - done - fraction) / fps)
        if phase == "done":
            total, eta = done, 0.0
        return VideoProgress(
            frames_done=done,
            frames_total=total,
            fps=fps,
            eta_seconds=eta,
            elapsed_seconds=now - self.started,
            frames_resumed=self.resumed,
            segments_done=segments,
            phase=phase,
            frame_fraction=fraction,
        )
