"""The loss catalog: one source for the README's table and the documentation's catalog page.

What each row says comes from the code — the loss families and their members (the package's registry of
families), each loss's one-line summary (its docstring) and its declared input domain (``loss.domain``) —
plus, here and only here, its counterparts in PyTorch, optax and Keras 3 and the reference its tests
compare against (``PEERS``).

    python docs/catalog.py            # rewrite the README block between the catalog markers (`make catalog`)
    python docs/catalog.py --check    # exit 1 if the README block is stale (also a test: tests/test_docs.py)

The documentation's page (docs/catalog.md at build time) is written by ``docs/hooks/site.py`` from
:func:`docs_table`.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN, END = "<!-- catalog-table -->", "<!-- /catalog-table -->"

# Counterparts of each loss: (PyTorch torch.nn.functional, optax.losses, Keras 3 keras.losses, the
# reference its tests use, a note shown after the name). "—": none. Keep every optax.losses function and
# every Keras loss class named somewhere (tests/test_readme.py checks it).
PEERS: dict[str, tuple[str, str, str, str, str]] = {
    # regression
    "mse": ("`mse_loss`", "`squared_error` (×1), `l2_loss` (×½)", "`MeanSquaredError`", "PyTorch", ""),
    "mae": ("`l1_loss`", "—", "`MeanAbsoluteError`", "PyTorch", ""),
    "mean_bias_error": ("—", "—", "—", "float64 NumPy", ""),
    "huber": ("`huber_loss`", "`huber_loss`", "`Huber`", "PyTorch, optax", ""),
    "smooth_l1": ("`smooth_l1_loss`", "—", "—", "PyTorch", ""),
    "log_cosh": ("—", "`log_cosh`", "`LogCosh`", "optax", ""),
    "quantile": ("—", "—", "—", "scikit-learn `mean_pinball_loss`", ""),
    "mape": ("—", "—", "`MeanAbsolutePercentageError` (percent)", "scikit-learn, Keras", "a fraction"),
    "msle": ("—", "—", "`MeanSquaredLogarithmicError`", "scikit-learn, Keras", ""),
    "poisson_nll": ("`poisson_nll_loss`", "—", "`Poisson` (`log_input=False`)", "PyTorch", ""),
    "gaussian_nll": ("`gaussian_nll_loss`", "—", "—", "PyTorch", ""),
    "tweedie": ("—", "—", "—", "scikit-learn `mean_tweedie_deviance`", ""),
    "smoothed_quantile": ("—", "—", "—", "float64 NumPy (Moreau envelope of the pinball loss)", ""),
    "concomitant_huber": ("—", "—", "—", "scikit-learn `HuberRegressor` objective", "Huber with a fitted scale"),
    "general_robust": ("—", "—", "—", "float64 NumPy + mpmath (Barron, CVPR 2019)", ""),
    "cauchy": ("—", "—", "—", "float64 NumPy + mpmath (Barron, CVPR 2019)", ""),
    "geman_mcclure": ("—", "—", "—", "float64 NumPy + mpmath (Barron, CVPR 2019)", ""),
    "welsch": ("—", "—", "—", "float64 NumPy + mpmath (Barron, CVPR 2019)", ""),
    # classification
    "cross_entropy": (
        "`cross_entropy`",
        "`softmax_cross_entropy`, `softmax_cross_entropy_with_integer_labels`, `safe_softmax_cross_entropy`",
        "`CategoricalCrossentropy`, `SparseCategoricalCrossentropy`",
        "PyTorch, optax",
        "int labels or probabilities; `z_loss=`",
    ),
    "nll": ("`nll_loss`", "—", "—", "PyTorch", ""),
    "binary_cross_entropy": (
        "`binary_cross_entropy` (probabilities), `binary_cross_entropy_with_logits`",
        "`sigmoid_binary_cross_entropy`",
        "`BinaryCrossentropy`",
        "PyTorch, optax",
        "logits by default",
    ),
    "focal": ("— (torchvision `sigmoid_focal_loss`)", "`sigmoid_focal_loss`", "`BinaryFocalCrossentropy`", "optax", ""),
    "multiclass_focal": ("—", "—", "`CategoricalFocalCrossentropy`", "Keras", ""),
    "hinge": ("—", "`hinge_loss`", "`Hinge`", "optax", ""),
    "squared_hinge": ("—", "—", "`SquaredHinge`", "Keras", ""),
    "multiclass_hinge": ("—", "`multiclass_hinge_loss`", "—", "optax", ""),
    "multi_margin": ("`multi_margin_loss`", "—", "—", "PyTorch", ""),
    "soft_margin": ("`soft_margin_loss`", "—", "—", "PyTorch", ""),
    "multilabel_soft_margin": ("`multilabel_soft_margin_loss`", "—", "—", "PyTorch", ""),
    "multilabel_margin": ("`multilabel_margin_loss`", "—", "—", "PyTorch", ""),
    "poly1": ("—", "`poly_loss_cross_entropy`", "—", "optax", ""),
    "generalized_cross_entropy": (
        "—",
        "—",
        "`CategoricalGeneralizedCrossEntropy`",
        "Keras, float64 NumPy (Zhang & Sabuncu 2018)",
        "",
    ),
    "categorical_hinge": ("—", "—", "`CategoricalHinge`", "Keras", ""),
    "perceptron": ("—", "`perceptron_loss`", "—", "optax", ""),
    "multiclass_perceptron": ("—", "`multiclass_perceptron_loss`", "—", "optax", ""),
    "sparsemax": ("—", "`sparsemax_loss`", "—", "optax", ""),
    "multiclass_sparsemax": ("—", "`multiclass_sparsemax_loss`", "—", "optax, float64 NumPy", ""),
    "smooth_labels": ("—", "`optax.smooth_labels`", "—", "optax", "helper"),
    # divergences
    "kl_divergence": (
        "`kl_div`",
        "`kl_divergence`, `kl_divergence_with_log_targets`",
        "`KLDivergence`",
        "PyTorch, optax",
        "",
    ),
    "js_divergence": ("—", "—", "—", "SciPy `jensenshannon`", ""),
    "generalized_kl": (
        "—",
        "`generalized_kl_divergence`, `convex_kl_divergence` (log input)",
        "—",
        "SciPy `kl_div`",
        "",
    ),
    "entropy": ("— (`distributions.Categorical.entropy`)", "—", "—", "SciPy, PyTorch", ""),
    # embeddings and metric learning
    "cosine_similarity": (
        "`cosine_similarity`",
        "`cosine_similarity`",
        "`CosineSimilarity` (negated)",
        "PyTorch, optax",
        "",
    ),
    "cosine_distance": ("—", "`cosine_distance`", "—", "optax", ""),
    "cosine_embedding": ("`cosine_embedding_loss`", "—", "—", "PyTorch", ""),
    "margin_ranking": ("`margin_ranking_loss`", "—", "—", "PyTorch", ""),
    "hinge_embedding": ("`hinge_embedding_loss`", "—", "—", "PyTorch", ""),
    "triplet_margin": ("`triplet_margin_loss`", "`triplet_margin_loss`", "—", "PyTorch", ""),
    "contrastive": ("—", "—", "—", "float64 NumPy (Hadsell et al. 2006)", ""),
    "ntxent": ("—", "`ntxent`", "—", "optax", ""),
    "circle": ("—", "—", "`Circle`", "Keras", ""),
    # ranking and recommendation
    "bpr": ("—", "—", "—", "float64 NumPy (Rendle et al. 2009)", ""),
    "pairwise_logistic": ("—", "—", "—", "float64 NumPy (TF-Ranking's pair terms)", ""),
    "pairwise_hinge": ("—", "—", "—", "float64 NumPy (TF-Ranking's pair terms)", ""),
    "ranking_softmax": ("—", "`ranking_softmax_loss`", "—", "optax", ""),
    "listmle": ("—", "—", "—", "float64 NumPy (Xia et al. 2008)", ""),
    # sequence / NLP
    "ctc": (
        "`ctc_loss`",
        "`ctc_loss`, `ctc_loss_with_forward_probs` (`return_forward_probs=True`)",
        "`CTC`",
        "PyTorch, optax",
        "",
    ),
    "sequence_cross_entropy": ("`cross_entropy` over tokens", "—", "—", "PyTorch, float64 NumPy", ""),
    "z_loss": ("—", "—", "—", "float64 NumPy", ""),
    "linear_cross_entropy": (
        "`linear_cross_entropy` (2.13)",
        "—",
        "—",
        "PyTorch, `cross_entropy(h @ w + b)`",
        "never forms the logits",
    ),
    # segmentation
    "dice": ("—", "`dice_loss`, `binary_dice_loss`", "`Dice`", "optax, Keras", ""),
    "tversky": ("—", "`dice_loss(alpha=, beta=)`", "`Tversky`", "optax, Keras", ""),
    "jaccard": ("—", "—", "—", "float64 NumPy", ""),
    "generalized_dice": ("—", "`multiclass_generalized_dice_loss`", "—", "float64 NumPy (Sudre et al. 2017)", ""),
    # reinforcement learning
    "policy_gradient": ("—", "—", "—", "float64 NumPy (Williams 1992)", ""),
    "ppo_clip": ("—", "—", "—", "float64 NumPy (Schulman et al. 2017)", ""),
    "td_error": ("—", "—", "—", "float64 NumPy", ""),
    "q_learning": ("—", "—", "—", "float64 NumPy (Watkins 1989, Mnih et al. 2015)", ""),
    "value_loss": ("—", "—", "—", "float64 NumPy", ""),
}

# Display titles of the loss families of the registry (jaxloss/_registry.py LOSS_FAMILIES); a family
# missing here is shown under its module name.
TITLES = {
    "regression": "regression",
    "classification": "classification",
    "divergence": "divergences",
    "embedding": "embeddings and metric learning",
    "ranking": "ranking and recommendation",
    "sequence": "sequence / NLP",
    "fused": "large vocabularies",
    "segmentation": "segmentation",
    "rl": "reinforcement learning",
}
# Used only where the package has no registry of loss families (older checkouts).
_FALLBACK_FAMILIES = (
    "regression",
    "classification",
    "divergence",
    "embedding",
    "ranking",
    "sequence",
    "segmentation",
    "rl",
    "fused",
)


def _import_jaxloss():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("jaxloss")


def families() -> list[tuple[str, str, list[str]]]:
    """``(title, module name, [public names])`` for every loss family, in the registry's order.

    The families and their members are the package's registry (``jaxloss._registry.LOSS_FAMILIES``, each
    module's ``__all__``): a loss added there appears here, and a loss without a ``PEERS`` row fails.
    """
    _import_jaxloss()
    try:
        modules = importlib.import_module("jaxloss._registry").LOSS_FAMILIES
    except (ImportError, AttributeError):
        modules = _FALLBACK_FAMILIES
    return [(TITLES.get(m, m), m, list(importlib.import_module(f"jaxloss.{m}").__all__)) for m in modules]


def _cell(text: str) -> str:
    """Markdown for a table cell: a code span holding ``|`` (``|p - t|``) becomes ``<code>`` with the
    pipe as an entity, which the table parser leaves alone; other pipes are escaped."""

    def code(m):
        inner = m.group(1)
        if "|" not in inner:
            return m.group(0)
        inner = inner.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "&#124;")
        return f"<code>{inner}</code>"

    text = re.sub(r"`([^`]+)`", code, text)
    return text.replace("|", "\\|")


def summary(fn) -> str:
    """The first paragraph of a docstring (its summary), with reST double backquotes as Markdown code."""
    doc = inspect.getdoc(fn) or ""
    line = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    return _cell(line.replace("``", "`"))


def domain(fn) -> str:
    """The declared domain of a loss's inputs (``loss.domain``, declared once with ``@_core.domain``)."""
    dom = getattr(fn, "domain", None)
    if dom is None:
        return "—"
    describe = getattr(importlib.import_module("jaxloss._core"), "_describe", None)
    parts = []
    for name, spec in dict(getattr(dom, "inputs", {}) or {}).items():
        text = describe(spec) if describe else spec.describe()
        parts.append(f"`{name}` {text}")
    return _cell("; ".join(parts)) if parts else "—"


def _rows():
    jaxloss = _import_jaxloss()
    for title, module, names in families():
        yield title, module, [(name, getattr(getattr(jaxloss, module), name)) for name in names]


def check_peers() -> list[str]:
    """Problems: losses without a PEERS row, PEERS rows naming no loss."""
    listed = {name for _, _, names in families() for name in names}
    problems = [f"{n}: a public loss without a row in docs/catalog.py PEERS" for n in sorted(listed - PEERS.keys())]
    problems += [f"{n}: a PEERS row in docs/catalog.py for no public loss" for n in sorted(PEERS.keys() - listed)]
    return problems


def _peer(name):
    if name not in PEERS:
        raise KeyError(f"{name}: add its counterparts to PEERS in docs/catalog.py")
    return PEERS[name]


def readme_table() -> str:
    """The README's table: one row per loss, grouped by family, with its counterparts."""
    lines = [
        "| jaxloss | PyTorch (`torch.nn.functional`) | optax (`optax.losses`) | Keras 3 (`keras.losses`) | reference in tests |",
        "|---|---|---|---|---|",
    ]
    for title, _, members in _rows():
        lines.append(f"| **{title}** | | | | |")
        for name, _ in members:
            torch, optax, keras, ref, note = _peer(name)
            cell = f"`{name}`" + (f" ({note})" if note else "")
            lines.append(f"| {cell} | {torch} | {optax} | {keras} | {ref} |")
    return "\n".join(lines)


def docs_table() -> str:
    """The documentation's catalog: per family, each loss (linked to its reference), summary, domain, peers."""
    out = []
    for title, module, members in _rows():
        out += [f"## {title[0].upper() + title[1:]}", ""]
        out += ["| loss | what it computes | input domain | PyTorch | optax | Keras 3 | tested against |"]
        out += ["|---|---|---|---|---|---|---|"]
        for name, fn in members:
            torch, optax, keras, ref, _ = _peer(name)
            link = f"[`{name}`][jaxloss.{module}.{name}]"
            out.append(f"| {link} | {summary(fn)} | {domain(fn)} | {torch} | {optax} | {keras} | {ref} |")
        out.append("")
    return "\n".join(out)


def render_readme(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"README.md lacks the markers {BEGIN} ... {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n<!-- generated by `make catalog` (docs/catalog.py); edit PEERS there, not here -->\n{readme_table()}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README block is stale")
    args = parser.parse_args(argv)
    problems = check_peers()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    text = README.read_text()
    new = render_readme(text)
    if args.check:
        if new != text:
            print("README.md's catalog table is stale: run `make catalog`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    print(f"README.md: catalog table rewritten ({sum(len(m) for _, _, m in families())} losses)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
