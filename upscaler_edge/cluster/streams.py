"""The JetStream streams, consumers and stores of a cluster, created once, never changed.

The coordinator creates them with its settings (how long a job may go without a heartbeat,
how many deliveries before it fails); workers and clients only create what is missing, so
the first creator's settings stay.
"""

from __future__ import annotations

import logging
from typing import Any

from .protocol import (
    DEAD_STREAM,
    FILES_BUCKET,
    JOB_SUBJECTS,
    JOBS_STREAM,
    RESULTS_STREAM,
    WORKERS_BUCKET,
)

__all__ = ["ACK_WAIT_S", "MAX_DELIVER", "ensure"]

log = logging.getLogger(__name__)

ACK_WAIT_S = 60.0  # a job without a heartbeat for this long goes to another worker
MAX_DELIVER = 3  # deliveries before a job fails (its workers kept vanishing)
KEEP_S = 7 * 24 * 3600  # results and files nobody collected are dropped after a week
WORKER_TTL_S = 30.0


async def ensure(js: Any, ack_wait: float = ACK_WAIT_S, max_deliver: int = MAX_DELIVER) -> None:
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        DiscardPolicy,
        RetentionPolicy,
        StorageType,
        StreamConfig,
    )
    from nats.js.errors import NotFoundError

    async def stream(cfg: StreamConfig) -> None:
        try:
            await js.stream_info(cfg.name)
        except NotFoundError:
            await js.add_stream(cfg)
            log.info("created stream %s", cfg.name)

    await stream(
        StreamConfig(
            name=JOBS_STREAM,
            subjects=list(JOB_SUBJECTS.values()),
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            max_msg_size=1 << 20,
            duplicate_window=120.0,
        )
    )
    await stream(
        StreamConfig(
            name=RESULTS_STREAM,
            subjects=["ue.results.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=KEEP_S,
            duplicate_window=120.0,
        )
    )
    # JetStream announces a job that ran out of deliveries; kept so a client that was away
    # still learns its job failed
    await stream(
        StreamConfig(
            name=DEAD_STREAM,
            subjects=[f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.*"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=KEEP_S,
        )
    )
    for size, subject in JOB_SUBJECTS.items():
        try:
            await js.consumer_info(JOBS_STREAM, size)
        except NotFoundError:
            await js.add_consumer(
                JOBS_STREAM,
                ConsumerConfig(
                    durable_name=size,
                    filter_subject=subject,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=ack_wait,
                    max_deliver=max_deliver,
                    max_ack_pending=10_000,
                ),
            )
    try:
        await js.object_store(FILES_BUCKET)
    except NotFoundError:
        await js.create_object_store(FILES_BUCKET, storage=StorageType.FILE, ttl=KEEP_S)
    try:
        await js.key_value(WORKERS_BUCKET)
    except NotFoundError:
        await js.create_key_value(bucket=WORKERS_BUCKET, ttl=WORKER_TTL_S, history=1)


async def job_settings(js: Any) -> tuple[float, int]:
    """(ack wait in seconds, max deliveries) of the job consumers."""
    info = await js.consumer_info(JOBS_STREAM, "small")
    return float(info.config.ack_wait or ACK_WAIT_S), int(info.config.max_deliver or MAX_DELIVER)
