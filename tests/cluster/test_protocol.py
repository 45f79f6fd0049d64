"""The cluster's messages: whatever bytes arrive, a job is either well formed or refused."""

from __future__ import annotations

import contextlib
import json
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upscaler_edge.cluster.node import _prune
from upscaler_edge.cluster.protocol import (
    FileRef,
    Job,
    ProtocolError,
    Result,
    options_from_json,
    options_to_json,
    parse_job,
    parse_result,
)
from upscaler_edge.options import Options

SHA = "ab" * 32
GOOD = Job(
    kind="image",
    job="0123456789abcdef",
    index=0,
    reply="ue.results.00aa11bb22cc33dd",
    input=FileRef(f"in/{SHA}", SHA, 1234, "photo.png"),
    options=options_to_json(Options(model="realesr-animevideov3", scale=2)),
    suffix=".png",
)


def test_a_good_job_round_trips():
    job = parse_job(GOOD.to_bytes())
    assert job == GOOD
    opts = options_from_json(job.options, Options(device="1", max_pixels=10_000_000))
    assert (opts.model, opts.scale, opts.device, opts.max_pixels) == (
        "realesr-animevideov3",
        2,
        "1",  # the worker's own device
        10_000_000,  # the smaller cap wins
    )


def _with(**changes):
    body = json.loads(GOOD.to_bytes())
    for key, value in changes.items():
        if value is KeyError:
            body.pop(key)
        else:
            body[key] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a JSON object"),
        (_with(v=2), "unsupported message version"),
        (_with(kind="shell"), "unknown job kind"),
        (_with(cmd="rm -rf /"), "unknown field"),
        (_with(job="../../etc/passwd"), "bad job id"),
        (_with(index=-1), "bad index"),
        (_with(index=3), "bad index"),  # an image has one part
        (_with(reply="$JS.API.STREAM.DELETE.UE_JOBS"), "bad reply subject"),
        (_with(input={"object": "in/../x", "sha256": SHA, "size": 1, "name": "a"}), "input"),
        (_with(suffix="/../../x"), "bad output suffix"),
        (_with(options={"models_dirs": ["/etc"]}), "unknown option"),
        (_with(options={"model": "../../evil"}), "not a plain name"),
        (_with(options={"tile": "big"}), "wrong type"),
        (_with(options={"scale": 99}), "bad options"),
        (_with(plan={"x": 1}), "an image job has no plan"),
        (_with(kind="segment"), "a segment job needs its plan"),
        (_with(job=KeyError), "field 'job'"),
        (b"x" * (2 << 20), "too large"),
    ],
)
def test_malformed_jobs_are_refused_with_the_reason(body, message):
    with pytest.raises(ProtocolError, match=message):
        parse_job(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_are_a_job_or_a_protocol_error(data):
    with contextlib.suppress(ProtocolError):  # anything else escaping fails the test
        parse_job(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(json.loads(GOOD.to_bytes()))), json_values)
def test_a_good_job_with_any_field_changed_is_a_job_or_a_protocol_error(key, value):
    body = json.loads(GOOD.to_bytes())
    body[key] = value
    try:
        job = parse_job(json.dumps(body).encode())
    except ProtocolError:
        return
    assert job.kind in ("image", "segment") and job.input.object == f"in/{job.input.sha256}"


RESULT = Result("0123456789abcdef", 0, "w", True, object="out/x", sha256=SHA, size=3)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(json.loads(RESULT.to_bytes()))), json_values)
def test_a_result_with_any_field_changed_is_a_result_or_a_protocol_error(key, value):
    body = json.loads(RESULT.to_bytes())
    body[key] = value
    with contextlib.suppress(ProtocolError):
        parse_result(json.dumps(body).encode())


def test_a_finished_result_must_name_its_output():
    assert parse_result(RESULT.to_bytes()) == RESULT
    with pytest.raises(ProtocolError, match="names its output"):
        parse_result(Result("0123456789abcdef", 0, "w", True).to_bytes())


def test_prune_keeps_the_most_recently_used_sources(tmp_path):
    now = time.time()
    for i, name in enumerate(["a", "b", "c", "d"]):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (now - 100 + i, now - 100 + i))
    (tmp_path / ".d.part").write_bytes(b"downloading")
    _prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".d.part", "c", "d"]


def test_the_join_command_survives_a_token_that_looks_like_an_option():
    from upscaler_edge.cluster.cli import build_parser
    from upscaler_edge.cluster.connect import Address

    for token in ("-Xy_z", "abc123"):
        cmd = Address("nats://10.0.0.2:4222", token, "ab" * 32).join_command().split()[1:]
        args = build_parser().parse_args(cmd)
        assert (args.serve, args.token, args.tls_pin) == ("nats://10.0.0.2:4222", token, "ab" * 32)


def test_new_tokens_are_hex(tmp_path):
    from upscaler_edge.cluster.server import Coordinator

    address = Coordinator(tmp_path, tls=False, advertise="127.0.0.1").prepare()
    assert len(address.token) == 48 and int(address.token, 16) >= 0
