"""The README's Python snippets run as written, and its loss table lists every public loss."""

import pathlib
import re

import pytest

import jaxloss

README = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("i", range(len(SNIPPETS)))
def test_readme_snippet_runs(i, capsys):
    code = SNIPPETS[i]
    if "def " not in code and "print" not in code and "assert" not in code:
        pytest.fail("a README snippet should do something checkable")
    exec(compile(code, f"README snippet {i}", "exec"), {})


def test_readme_snippet_values():
    """The printed values in the first snippet: Huber, float64 formula 0.5*0.5^2, 2-0.5, 1-0.5 averaged."""
    import jax
    import jax.numpy as jnp

    value = jax.jit(jaxloss.huber)(jnp.array([0.5, 2.0, -1.0]), jnp.zeros(3))
    assert abs(float(value) - (0.125 + 1.5 + 0.5) / 3) < 1e-6
    assert "0.8333334" in SNIPPETS[0]
