"""The README's Python snippets run as written, and its loss table lists every public loss."""

import pathlib
import re

import pytest

import jaxloss
from jaxloss import _registry

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
    assert "0.7083334" in SNIPPETS[0]


def _table():
    return README.split("<!-- catalog-table -->")[1].split("<!-- /catalog-table -->")[0]


def test_readme_table_lists_every_public_loss():
    first_cells = [row.split("|")[1] for row in _table().splitlines() if row.startswith("| `")]
    listed = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    public = set(_registry.loss_names() | _registry.NOT_LOSSES)
    assert public - listed == set(), f"missing from the README table: {sorted(public - listed)}"
    assert listed - public == set(), f"the README table names losses that do not exist: {sorted(listed - public)}"


def test_readme_table_covers_optax_and_keras():
    """Every optax.losses function and every Keras 3 loss class has a jaxloss counterpart in the table."""
    import keras
    import optax

    table = _table()
    # Not losses: a loss constructor, and a CTC variant returning the forward probabilities.
    not_losses = {"make_fenchel_young_loss", "ctc_loss_with_forward_probs"}
    optax_names = {n for n in dir(optax.losses) if not n.startswith("_")} - not_losses
    missing = {n for n in optax_names if not re.search(rf"`{n}`", table)}
    assert not missing, f"optax losses without a counterpart row: {sorted(missing)}"
    keras_names = {n for n in dir(keras.losses) if n[0].isupper() and n != "Loss"}
    keras_missing = {n for n in keras_names if not re.search(rf"`{n}`", table)}
    assert not keras_missing, f"Keras losses without a counterpart row: {sorted(keras_missing)}"
