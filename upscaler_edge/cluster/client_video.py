"""The video side of :class:`~upscaler_edge.cluster.client.ClusterClient`.

A video is planned here (``video.distributed``: the same segments, encoder and tile as a
one-PC run), its segments queued as large jobs that several workers take at once, and the
finished segments joined in order without re-encoding. Finished segments are kept beside the
output (:class:`VideoParts`) until it is written, so the same request again, after a cancel,
a crash or a lost connection, sends only the segments still missing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import errors
from ..options import Options
from . import protocol
from .client_core import ClientCore, Progress
from .parts import VideoParts
from .protocol import Job

__all__ = ["ClientVideo"]


class ClientVideo(ClientCore):
    """``submit_video`` and ``run_video``: a video's segments spread over the cluster."""

    def submit_video(
        self,
        src: Path | str,
        dst: Path | str,
        options: Options | None = None,
        video: Any = None,
        *,
        progress: Progress | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Split a video into its segments, queue them all (several workers take them at
        once), and join the finished segments in order without re-encoding; the future gives
        the VideoResult once ``dst`` is written. Planning reads the video here first.

        Finished segments are kept beside ``dst`` (:class:`VideoParts`) until the output is
        written: after a cancel, a crash or a lost connection, the same call again sends only
        the segments still missing (``VideoResult.frames_resumed`` counts the others)."""
        from ..video import VideoOptions
        from ..video.distributed import plan_segments

        src, dst = Path(src), Path(dst)
        opts = options or Options()
        vopts = video or VideoOptions()
        if dst.exists() and not opts.overwrite:
            raise errors.OutputExistsError(f"{dst} exists (use --overwrite)")
        plan = plan_segments(src, opts, vopts)
        parts = VideoParts(dst, plan.digest)
        kept = parts.open()  # finished by an earlier run of the same request
        done = [0] * plan.count
        for index, (meta, _) in kept.items():
            done[index] = int(meta["segment"]["frames"])
        resumed = sum(done)
        lock = threading.Lock()

        def frames(index: int) -> Progress:
            def report(n: int, _total: int) -> None:
                with lock:
                    done[index] = n
                    total = sum(done)
                if progress is not None:
                    progress(total, plan.frames)

            return report

        futures: list[concurrent.futures.Future[Any]] = [
            concurrent.futures.Future() for _ in range(plan.count)
        ]
        for index, part in kept.items():
            futures[index].set_result(part)
        missing = [i for i in range(plan.count) if i not in kept]
        if missing:
            self._call(self._submit_segments(src, plan, opts, parts, futures, missing, frames), 600)
        whole: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._videos[id(whole)] = futures
        threading.Thread(
            target=self._assemble,
            args=(src, plan, futures, parts, dst, opts.overwrite, whole, resumed),
            name="cluster-join",
            daemon=True,
        ).start()
        return whole

    async def _submit_segments(
        self,
        src: Path,
        plan: Any,
        opts: Options,
        parts: VideoParts,
        futures: list[concurrent.futures.Future[Any]],
        indices: list[int],
        frames: Callable[[int], Progress],
    ) -> None:
        ref = await self._put_input(src)
        video_id = uuid.uuid4().hex
        body = plan.to_json()
        async with self._files_lock:  # one reference per segment
            self._inputs[ref.object] += len(indices) - 1
        for index in indices:
            job = Job(
                kind="segment",
                job=video_id,
                index=index,
                reply=self.reply,
                input=ref,
                options=protocol.options_to_json(opts),
                suffix=".pkt",
                plan=body,
            )
            self._parts[f"{video_id}:{index}"] = parts
            await self._publish(
                job, protocol.LARGE, parts.segment(index), True, futures[index], frames(index)
            )

    def _assemble(
        self,
        src: Path,
        plan: Any,
        futures: list[concurrent.futures.Future[Any]],
        parts: VideoParts,
        dst: Path,
        overwrite: bool,
        whole: concurrent.futures.Future[Any],
        resumed: int,
    ) -> None:

        from ..video.distributed import join_segments

        try:
            segments = []
            made_on: dict[str, None] = {}  # "worker: device", in segment order
            for f in futures:  # the first failure fails the video; the rest is given up
                meta, path = f.result()
                segments.append((meta["segment"], path))
                made_on[f"{meta.get('worker', '?')}: {meta.get('device') or '?'}"] = None
            result = join_segments(src, plan, segments, dst, overwrite=overwrite)
            result = dataclasses.replace(result, device=", ".join(made_on), frames_resumed=resumed)
        except BaseException as exc:
            if isinstance(exc, errors.InputError):
                parts.remove()  # a damaged input: a rerun would meet the same damage
            for f in futures:
                if not f.done():
                    with contextlib.suppress(Exception):
                        self.cancel(f)
            if not whole.done():  # (a cancel has failed it already)
                whole.set_exception(exc)
        else:
            parts.remove()
            if not whole.done():
                whole.set_result(result)
        finally:
            self._videos.pop(id(whole), None)

    def run_video(
        self,
        src: Path | str,
        dst: Path | str,
        options: Options | None = None,
        video: Any = None,
        *,
        progress: Progress | None = None,
        cancel: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """The video through the cluster (see :meth:`submit_video`); blocks like
        :meth:`upscaler_edge.worker.Worker.run_video`."""
        future = self.submit_video(src, dst, options, video, progress=progress)
        return self.wait(future, cancel, timeout)
