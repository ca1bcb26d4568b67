"""Token classification on padded sequences with `sequence_cross_entropy`.

Generated data: sequences of 4 to 24 tokens (ids 1..11, padded with id 0 to length 24; most sequences are
short). Each token's tag depends on its two left neighbours, `tag[t] = (token[t] + token[t-1] +
token[t-2]) mod 3` (tokens before the start are 0), replaced by a random tag with probability 0.1 (in
training and test data alike), so a model must read context and the best possible accuracy is
`0.9 + 0.1 / 3 = 0.933`. The model is plain JAX: an embedding, two 1-D
convolutions of width 3 and a dense layer giving `[batch, time, 3]` logits. Batches are
`(tokens, (tags, lengths))`; the loss reads the lengths:

- `sequence_cross_entropy(logits, tags, lengths=lengths)` — every real token counts once
  (`normalize="tokens"`, PyTorch's flattened `ignore_index` convention);
- the same with `normalize="sequences"` — every sequence counts once, so tokens of short sequences
  weigh more;
- no mask: `cross_entropy` over all 24 positions, padding tagged 0 — the common mistake.

The table reports the per-token accuracy over real tokens only, split by sequence length, next to the
accuracy counted over every position including padding. What to look at: counted over all positions,
the accuracy misjudges both ways. The unmasked model looks better than it is, because padding is
trivially predictable (it is always tag 0); the masked models never receive a loss at padding, predict
anything there, and can look worse than they are. Per-token accuracy must be computed on real tokens,
where the three end equal here.

In `token_classification.png`: left, the training objective per epoch — the unmasked one looks lower
only because about half of its positions are easy padding; right, the held-out accuracy per epoch on
real tokens (solid) and over all positions (dotted). In the first epochs the unmasked model learns the
real task more slowly (the padding dilutes its gradient); the masked losses reach the ceiling of about
0.93 sooner. "tokens" and "sequences" normalisation differ little here because every position is
equally hard.

Run: `python examples/token_classification.py [--quick] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import functools
import os

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxloss  # noqa: E402

T, VOCAB, TAGS, NOISE = 24, 12, 3, 0.1


def make_data(n, rng):
    """``tokens [n, T]`` (0 = padding), ``tags [n, T]`` (0 at padding), ``lengths [n]``."""
    lengths = np.minimum(4 + rng.geometric(0.12, size=n) - 1, T).astype(np.int32)
    tokens = rng.integers(1, VOCAB, size=(n, T)).astype(np.int32)
    valid = np.arange(T)[None, :] < lengths[:, None]
    tokens = np.where(valid, tokens, 0)
    prev1 = np.concatenate([np.zeros((n, 1), np.int32), tokens[:, :-1]], axis=1)
    prev2 = np.concatenate([np.zeros((n, 2), np.int32), tokens[:, :-2]], axis=1)
    tags = (tokens + prev1 + prev2) % TAGS
    noisy = rng.random((n, T)) < NOISE
    tags = np.where(noisy, rng.integers(0, TAGS, size=(n, T)), tags)
    tags = np.where(valid, tags, 0).astype(np.int32)
    return tokens, tags, lengths


def init(key, emb=16, hidden=48):
    k = jax.random.split(key, 4)
    return {
        "embed": jax.random.normal(k[0], (VOCAB, emb)) * 0.5,
        "conv1": {"w": jax.random.normal(k[1], (3, emb, hidden)) * np.sqrt(2 / (3 * emb)), "b": jnp.zeros(hidden)},
        "conv2": {
            "w": jax.random.normal(k[2], (3, hidden, hidden)) * np.sqrt(2 / (3 * hidden)),
            "b": jnp.zeros(hidden),
        },
        "out": {"w": jax.random.normal(k[3], (hidden, TAGS)) * np.sqrt(1 / hidden), "b": jnp.zeros(TAGS)},
    }


def _conv1d(x, layer):
    y = jax.lax.conv_general_dilated(x, layer["w"], (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))
    return jax.nn.relu(y + layer["b"])


def tagger(params, tokens):
    """Logits ``[batch, T, TAGS]``."""
    x = params["embed"][tokens]
    x = _conv1d(x, params["conv1"])
    x = _conv1d(x, params["conv2"])
    return x @ params["out"]["w"] + params["out"]["b"]


def padded_loss(logits, targets, *, normalize="tokens", weights=None):
    """``sequence_cross_entropy`` with the lengths carried in the targets ``(tags, lengths)``."""
    tags, lengths = targets
    return jaxloss.sequence_cross_entropy(logits, tags, lengths=lengths, normalize=normalize, weights=weights)


def unmasked_loss(logits, targets, *, weights=None):
    """The mistake: every position, padding included, is a token to classify."""
    tags, _ = targets
    return jaxloss.cross_entropy(logits, tags)


def token_accuracy(logits, targets):
    """Accuracy over real tokens only."""
    tags, lengths = targets
    valid = jnp.arange(tags.shape[-1]) < lengths[:, None]
    hit = (jnp.argmax(logits, -1) == tags) & valid
    return jnp.sum(hit) / jnp.sum(valid)


def accuracy_with_padding(logits, targets):
    """The flattering metric: every position, padding included."""
    return jnp.mean(jnp.argmax(logits, -1) == targets[0])


def run(quick: bool, out: str):
    rng = np.random.default_rng(0)
    train = make_data(1200 if quick else 4000, rng)
    test = make_data(1000, rng)
    epochs = 10 if quick else 30
    params0 = init(jax.random.PRNGKey(0))
    variants = {
        "sequence_cross_entropy (tokens)": jaxloss.objective(tagger, padded_loss),
        "sequence_cross_entropy (sequences)": jaxloss.objective(
            tagger, functools.partial(padded_loss, normalize="sequences")
        ),
        "cross_entropy, no mask": jaxloss.objective(tagger, unmasked_loss),
    }
    tok, tag, ln = test
    valid = np.arange(T)[None, :] < ln[:, None]
    rows, histories = [], {}
    for name, obj in variants.items():
        res = jaxloss.fit(
            obj,
            params0,
            (train[0], (train[1], train[2])),
            optax.adam(3e-3),
            epochs,
            batch_size=64,
            validation_data=(tok, (tag, ln)),
            metrics={"token_acc": token_accuracy, "acc_with_padding": accuracy_with_padding},
            verbose=0,
        )
        hit = np.asarray(jnp.argmax(tagger(res.params, tok), -1)) == tag
        short, long_ = ln <= 8, ln >= 16
        rows.append(
            dict(
                objective=name,
                real=hit[valid].mean(),
                short=hit[valid & short[:, None]].mean(),
                long=hit[valid & long_[:, None]].mean(),
                with_padding=hit.mean(),
            )
        )
        histories[name] = res.history

    print(
        f"test set: {len(ln)} sequences, {int(valid.sum())} real tokens of {valid.size} positions "
        f"({(ln <= 8).sum()} sequences of length <= 8, {(ln >= 16).sum()} of length >= 16)"
    )
    head = f"{'objective':<36s} {'token acc':>9s} {'len<=8':>7s} {'len>=16':>8s} {'acc with padding':>17s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['objective']:<36s} {r['real']:>9.4f} {r['short']:>7.4f} {r['long']:>8.4f} {r['with_padding']:>17.4f}"
        )

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, h), color in zip(histories.items(), colors):
        ep = np.arange(1, len(h["loss"]) + 1)
        axes[0].plot(ep, h["loss"], color=color, label=name)
        axes[1].plot(ep, h["val_token_acc"], "-", color=color, label=f"{name}: real tokens")
        axes[1].plot(ep, h["val_acc_with_padding"], ":", color=color, label=f"{name}: with padding")
    axes[0].set(
        xlabel="epoch", ylabel="training objective", yscale="log", title="training loss (each its own objective)"
    )
    axes[1].set(
        xlabel="epoch",
        ylabel="held-out accuracy",
        title="held-out accuracy (solid: real tokens, dotted: all positions)",
        ylim=(0, 1),
    )
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    fig.savefig(os.path.join(out, "token_classification.png"), dpi=110)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller data and fewer epochs (under a minute on 2 cores)"
    )
    parser.add_argument("--out", default="out", help="directory for the PNG (default out/)")
    args = parser.parse_args(argv)
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
