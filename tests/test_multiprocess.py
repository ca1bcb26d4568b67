"""Multi-process data parallelism: 2 CPU processes on localhost (``jax.distributed``, gloo collectives), each
holding half of a global batch, run jitted DP-SGD steps (``jaxloss.objective`` with ``cross_entropy``,
``clipped_mean_grad`` with clipping and noise, an optax update); the parameters and losses must equal a
single-process run of the same steps (``tests/multiprocess_worker.py``). Reference: that single-process run
(itself the library on one device, whose numbers the rest of the suite checks against PyTorch/NumPy)."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent
WORKER = HERE / "multiprocess_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    return env


def test_two_processes_equal_one(tmp_path):
    ref_out, out = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run(
        [sys.executable, str(WORKER), "0", "1", "0", str(ref_out)],
        env=_env(),
        check=True,
        timeout=300,
        capture_output=True,
    )
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(i), "2", port, str(out)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the 2-process run timed out:\n" + "\n".join(logs))
    assert all(p.returncode == 0 for p in procs), "\n---\n".join(log[-4000:] for log in logs)
    ref, got = json.loads(ref_out.read_text()), json.loads(out.read_text())
    assert ref["devices"] == 1 and got["devices"] == 2
    for key in ("w", "b", "losses"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert not np.allclose(ref["losses"][0], ref["losses"][-1])  # the steps did move the parameters
