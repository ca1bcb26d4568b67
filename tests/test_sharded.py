"""The sharded contract: jaxloss under ``jax.jit`` with inputs sharded over a mesh of 8 devices.

The checks (``tests/sharded_checks.py``) run once, in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the rest of the suite keeps its own devices); each
is reported here as its own test. The reference of every check is the same computation on one device
(relative 1e-5, float32): every registered loss (value, gradients and per-example losses, with masks and
weights sharded on the batch too), ``linear_cross_entropy`` data-parallel, vocabulary-parallel and on a 2-D
mesh (labels, class weights, probability targets, bf16), ``objective``, ``minimize``, ``fit``,
``train_step``, ``per_sample_grads``, ``per_sample_grad_norms``, ``clipped_mean_grad`` and
``grad_statistics`` (with and without ``chunk_size``). Layout checks: gradients and per-example outputs
come back sharded like their inputs; the compiled HLO has no all-gather of the weight, of logits or of the
batch; the vocabulary-parallel fused loss's per-device compiled memory is at most 1/8 of one device's plus
one ``[tokens, hidden]`` buffer. The DP-SGD noise's variance under sharding is that of noise added once,
``(sigma C / B)^2`` (a NumPy estimate over 400 keys).
"""

import fcntl
import json
import os
import pathlib
import subprocess
import sys

import pytest
import sharded_checks

HERE = pathlib.Path(__file__).resolve().parent
FIXED = [
    *(
        f"linear_cross_entropy-{v}-{lay}"
        for v in ("labels", "class_weights", "probs", "bf16")
        for lay in ("data", "vocab", "2d")
    ),
    "linear_cross_entropy-hlo-memory",
    "objective",
    "train_step",
    "minimize",
    "fit",
    "clipped_mean_grad-noise-variance",
    *(
        f"{tool}-chunk{c}"
        for c in ("None", "8")
        for tool in (
            "per_sample_grads",
            "per_sample_grad_norms",
            "clipped_mean_grad",
            "grad_statistics",
            "per_sample_no_batch_gather",
        )
    ),
]
CHECKS = sharded_checks.loss_check_ids() + FIXED


def _run(out: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(HERE / "sharded_checks.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0 or not out.exists():
        pytest.fail(f"sharded_checks.py failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The checks' results, computed once per test run: under pytest-xdist the workers share one run (the
    first to take the lock runs the subprocess, the others read its file)."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:
        out = tmp_path_factory.mktemp("sharded") / "results.json"
        _run(out)
        return json.loads(out.read_text())
    shared = tmp_path_factory.getbasetemp().parent / f"sharded-{run_id}"
    shared.mkdir(exist_ok=True)
    out = shared / "results.json"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not out.exists():
                _run(out)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return json.loads(out.read_text())


@pytest.mark.parametrize("check", CHECKS)
def test_sharded_equals_one_device(results, check):
    assert check in results, f"check {check} did not run"
    passed, message = results[check]
    assert passed, message


def test_every_check_is_listed(results):
    assert sorted(results) == sorted(CHECKS)


def test_sharded_benchmark_full_shape(tmp_path):
    """``python -m benchmarks.sharded`` at the issue's full shape (tokens 8192, hidden 2048, vocab 131072;
    8 simulated devices, compile only, a few seconds) meets its memory target and finds no large all-gather.

    The target is stated at that shape: at the ``--quick`` shape the fixed per-chunk buffers do not shrink
    with the vocabulary shard, so ``one device / 8`` is not a meaningful bound there."""
    out = tmp_path / "sharded.md"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, "-m", "benchmarks.sharded", "--out", str(out)],
        cwd=HERE.parent,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    text = out.read_text()
    assert "(met)" in text, text
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| ") and "parallel" in line]
    assert len(rows) == 2 and all(r[5].strip().startswith("0 /") for r in rows), text
