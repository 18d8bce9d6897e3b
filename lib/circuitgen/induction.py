"""Induction heads on repeated random token sequences.

A batch is ``[BOS, t_1..t_n, t_1..t_n]`` (length ``2n + 1``; position ``p`` holds token ``p``).
A model that has learned induction predicts the second copy from the first, so its loss on the
second half drops far below the loss on the first half, which is unpredictable by construction.

Head scores are read from ``blocks.L.attn.hook_pattern`` (``[batch, head, query, key]``) and
averaged over the batch and over the query positions where the target key exists:

- previous-token: attention from ``i`` to ``i - 1``, for queries ``i = 1..2n``;
- duplicate-token: attention from ``i`` to ``i - n`` (the earlier copy of the same token), for the
  second-half queries ``i = n+1..2n``;
- induction: attention from ``i`` to ``i - n + 1`` (the token that followed the earlier copy), for
  the second-half queries ``i = n+1..2n``.

Each score is the mean fraction of a head's attention that lands on the target, so it lies in
[0, 1]. (ARENA's induction stripe, ``pattern.diagonal(-(n - 1))``, also takes in two first-half
queries, ``n - 1`` and ``n``, that cannot be doing induction; here they are left out.)

Tokens within one sequence are drawn without replacement, so every second-half token has exactly
one earlier occurrence and the targets above are unambiguous. Under that condition TransformerLens's
own head detector (``transformer_lens.head_detector.detect_head``, error measure ``"mul"``) is an
exact rescaling of these scores; :func:`compare_with_tl_detector` checks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd
import torch
from tqdm.auto import tqdm

HEAD_KINDS = ("previous_token", "duplicate_token", "induction")
TL_HEAD_NAMES = {
    "previous_token": "previous_token_head",
    "duplicate_token": "duplicate_token_head",
    "induction": "induction_head",
}
_WORD = re.compile(r"^ [A-Za-z]{2,}$")


# --------------------------------------------------------------------------------------------
# Sequences
# --------------------------------------------------------------------------------------------


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    ids |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    return ids


def token_pool(model, kind: str = "any") -> torch.Tensor:
    """The token ids repeated sequences are drawn from (sorted, 1-D ``long``).

    ``"any"``: every id the tokenizer and the embedding both know, minus special and added tokens
    (BOS/EOS/PAD, chat markers). ``"words"``: only tokens that decode to a space and 2+ ASCII
    letters and re-encode to themselves, so a sequence of them is a string that tokenizes back to
    the same ids (what TransformerLens's text-only head detector needs).
    """
    tok = model.tokenizer
    n = min(int(model.cfg.d_vocab), len(tok))
    special = _special_ids(tok)
    ids = [i for i in range(n) if i not in special]
    if kind == "any":
        pass
    elif kind == "words":
        texts = tok.batch_decode([[i] for i in ids])
        cand = [(i, t) for i, t in zip(ids, texts) if _WORD.match(t)]
        enc = tok([t for _, t in cand], add_special_tokens=False)["input_ids"]
        ids = [i for (i, _), e in zip(cand, enc) if e == [i]]
    else:
        raise ValueError(f"unknown token pool kind {kind!r}: use 'any' or 'words'")
    if not ids:
        raise ValueError(f"the {kind!r} token pool of this tokenizer is empty")
    return torch.tensor(ids, dtype=torch.long)


def repeated_tokens(
    model, seq_len: int, n_seqs: int, seed: int = 0, pool: str | torch.Tensor = "any"
) -> torch.Tensor:
    """``[n_seqs, 2 * seq_len + 1]`` tokens: BOS, then ``seq_len`` random tokens, then them again.

    Seeded by its own ``torch.Generator``, so the global RNG state neither changes nor matters.
    Tokens within a sequence are distinct (drawn without replacement from ``pool``).
    """
    if seq_len < 2 or n_seqs < 1:
        raise ValueError(f"need seq_len >= 2 and n_seqs >= 1, got {seq_len=} {n_seqs=}")
    ids = token_pool(model, pool) if isinstance(pool, str) else pool
    if seq_len > len(ids):
        raise ValueError(f"seq_len {seq_len} exceeds the {len(ids)} tokens in the pool")
    if 2 * seq_len + 1 > model.cfg.n_ctx:
        raise ValueError(f"2 * seq_len + 1 = {2 * seq_len + 1} exceeds the context {model.cfg.n_ctx}")
    bos = model.tokenizer.bos_token_id
    if bos is None:
        raise ValueError("the tokenizer has no BOS token; this study prepends BOS to every sequence")
    gen = torch.Generator().manual_seed(seed)
    half = torch.stack([ids[torch.randperm(len(ids), generator=gen)[:seq_len]] for _ in range(n_seqs)])
    bos_col = torch.full((n_seqs, 1), bos, dtype=torch.long)
    return torch.cat([bos_col, half, half], dim=1)


def seq_len_of(tokens: torch.Tensor) -> int:
    """``n`` for a ``[batch, 2n + 1]`` repeated-token batch (checked)."""
    total = tokens.shape[-1]
    n = (total - 1) // 2
    if total != 2 * n + 1 or not torch.equal(tokens[:, 1 : n + 1], tokens[:, n + 1 :]):
        raise ValueError("tokens are not of the form [BOS, seq, seq]")
    return n


# --------------------------------------------------------------------------------------------
# Scores from attention patterns
# --------------------------------------------------------------------------------------------


def target_offsets(seq_len: int) -> dict[str, tuple[int, int]]:
    """For each head kind: (key offset ``query - key``, first query position)."""
    return {
        "previous_token": (1, 1),
        "duplicate_token": (seq_len, seq_len + 1),
        "induction": (seq_len - 1, seq_len + 1),
    }


def pattern_scores(pattern: torch.Tensor, seq_len: int) -> dict[str, torch.Tensor]:
    """Per-head scores ``{kind: [head]}`` from one layer's ``[batch, head, query, key]`` pattern,
    averaged over the batch and the query positions that have the target."""
    out = {}
    for kind, (offset, first_q) in target_offsets(seq_len).items():
        stripe = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)  # [b, h, q - offset], q >= offset
        out[kind] = stripe[..., first_q - offset :].float().mean(dim=(0, -1))
    return out


@dataclass
class InductionRun:
    """What one pass over a repeated-token batch gives."""

    model: str
    seq_len: int
    n_seqs: int
    loss: torch.Tensor  # [n_seqs, 2n]: loss predicting token p + 1 at position p
    scores: dict[str, torch.Tensor]  # kind -> [n_layers, n_heads]
    tokens: torch.Tensor = field(repr=False)
    first_patterns: torch.Tensor = field(repr=False)  # [n_layers, n_heads, query, key] of sequence 0

    def patterns_of(self, heads: list[tuple[int, int]]) -> torch.Tensor:
        """``[len(heads), query, key]`` attention patterns on sequence 0."""
        return torch.stack([self.first_patterns[layer, head] for layer, head in heads])

    def loss_by_half(self) -> dict[str, float]:
        return loss_by_half(self.loss, self.seq_len)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {k: score_frame(v) for k, v in self.scores.items()}


def per_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, pos - 1]`` cross-entropy (nats) of the next token at each position."""
    logprobs = logits[:, :-1].float().log_softmax(-1)
    return -logprobs.gather(-1, tokens[:, 1:, None])[..., 0]


def loss_by_half(loss: torch.Tensor, seq_len: int) -> dict[str, float]:
    """Mean loss predicting the first copy (tokens 1..n) and the second copy (tokens n+1..2n)."""
    return {
        "first_half": loss[:, :seq_len].mean().item(),
        "second_half": loss[:, seq_len:].mean().item(),
    }


def run(model, tokens: torch.Tensor, batch_size: int = 8, progress: bool = True) -> InductionRun:
    """One forward pass per batch: per-token loss and the three head scores of every head."""
    n = seq_len_of(tokens)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    sums = {k: torch.zeros(L, H) for k in HEAD_KINDS}
    losses, first = [], None
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(L)]
    chunks = range(0, len(tokens), batch_size)
    with torch.no_grad():
        for start in tqdm(chunks, desc="batches", disable=not progress or len(chunks) < 2,
                          leave=False):
            batch = tokens[start : start + batch_size].to(model.cfg.device)
            logits, cache = model.run_with_cache(batch, names_filter=lambda name: name in names)
            losses.append(per_token_loss(logits, batch).cpu())
            if first is None:
                first = torch.stack([cache[name][0].float().cpu() for name in names])
            for layer, name in enumerate(names):
                pattern = cache[name]
                if pattern.shape[1] != H:
                    raise ValueError(f"{name} has {pattern.shape[1]} heads, expected {H}")
                for kind, s in pattern_scores(pattern, n).items():
                    sums[kind][layer] += s.cpu() * len(batch)
            del cache, logits
    return InductionRun(
        model=getattr(getattr(model, "circuitgen", None), "model", str(model.cfg.model_name)),
        seq_len=n, n_seqs=len(tokens), loss=torch.cat(losses),
        scores={k: v / len(tokens) for k, v in sums.items()}, tokens=tokens,
        first_patterns=first,
    )


def attention_patterns(model, tokens: torch.Tensor, heads: list[tuple[int, int]]) -> torch.Tensor:
    """``[len(heads), query, key]`` patterns of the given heads on one ``[pos]`` sequence."""
    layers = sorted({layer for layer, _ in heads})
    names = {f"blocks.{layer}.attn.hook_pattern" for layer in layers}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens[None].to(model.cfg.device), names_filter=lambda n: n in names)
    return torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"][0, head].cpu() for layer, head in heads])


def score_frame(scores: torch.Tensor) -> pd.DataFrame:
    """A ``[n_layers, n_heads]`` score tensor as a DataFrame (index layer, columns head)."""
    return pd.DataFrame(
        scores.numpy(), index=pd.Index(range(scores.shape[0]), name="layer"),
        columns=pd.Index(range(scores.shape[1]), name="head"),
    )


def top_heads(scores: torch.Tensor, k: int = 5) -> pd.DataFrame:
    """The ``k`` highest-scoring heads, best first (ties by layer then head): head, layer, score."""
    flat = scores.flatten()
    order = torch.sort(-flat, stable=True).indices[:k]
    n_heads = scores.shape[1]
    rows = [
        {"head": f"{i // n_heads}.{i % n_heads}", "layer": int(i // n_heads),
         "head_index": int(i % n_heads), "score": float(flat[i])}
        for i in order.tolist()
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Cross-check against TransformerLens's head detector
# --------------------------------------------------------------------------------------------


def tl_scale(kind: str, seq_len: int) -> float:
    """Factor from our score to TL's ``detect_head(..., error_measure="mul")`` score.

    TL divides the attention on the detection pattern by the attention of *all* ``2n + 1`` query
    rows (each sums to 1); ours averages over only the rows that have a target (``2n`` for
    previous-token, ``n`` for duplicate and induction). With distinct tokens per sequence the
    detection patterns coincide, so ``tl = ours * rows / (2n + 1)`` exactly.
    """
    rows = 2 * seq_len if kind == "previous_token" else seq_len
    return rows / (2 * seq_len + 1)


def tl_detector_scores(model, texts: list[str], kinds=HEAD_KINDS, share_cache: bool = True) -> dict:
    """TransformerLens's own ``{kind: [n_layers, n_heads]}`` scores, averaged over ``texts``.

    ``share_cache=False`` lets ``detect_head`` run the model itself (one full-cache forward per
    text and kind, its whole code path); ``True`` runs each text once, caching only the patterns,
    and hands that cache to ``detect_head`` for every kind (same numbers, several times faster).
    """
    from transformer_lens.head_detector import detect_head

    if not share_cache:
        return {k: detect_head(model, texts, TL_HEAD_NAMES[k]).float().cpu() for k in kinds}
    out = {k: [] for k in kinds}
    with torch.no_grad():
        for text in texts:
            _, cache = model.run_with_cache(
                model.to_tokens(text), remove_batch_dim=True,
                names_filter=lambda name: name.endswith("attn.hook_pattern"),
            )
            for k in kinds:
                out[k].append(detect_head(model, text, TL_HEAD_NAMES[k], cache=cache).float().cpu())
    return {k: torch.stack(v).mean(0) for k, v in out.items()}


def compare_with_tl_detector(
    model, seq_len: int = 10, n_seqs: int = 2, seed: int = 0, atol: float = 1e-4,
    share_cache: bool = True,
) -> pd.DataFrame:
    """Our scores vs TL's detector on the same sequences, one row per head kind.

    ``detect_head`` only takes text (it calls ``model.to_tokens``), so the sequences are drawn from
    the ``"words"`` pool and decoded; we check that the text tokenizes back to exactly our tokens
    before comparing. Columns: kind, max_abs_diff (after :func:`tl_scale`), agrees.
    """
    tokens = repeated_tokens(model, seq_len, n_seqs, seed=seed, pool="words")
    texts = [model.tokenizer.decode(t[1:]) for t in tokens]
    back = model.to_tokens(texts).cpu()
    if not torch.equal(back, tokens):
        raise AssertionError("decoded word sequences do not tokenize back to the same ids")
    ours = run(model, tokens, progress=False).scores
    tl_scores = tl_detector_scores(model, texts, share_cache=share_cache)
    rows = []
    for kind in HEAD_KINDS:
        tl = tl_scores[kind]
        diff = (ours[kind] * tl_scale(kind, seq_len) - tl).abs().max().item()
        rows.append({"kind": kind, "max_abs_diff": diff, "agrees": diff <= atol})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _title(result: InductionRun, what: str) -> str:
    return f"{what}\n{result.model}, {result.n_seqs} sequences of {result.seq_len} random tokens, repeated"


def plot_loss_by_position(result: InductionRun):
    """Mean loss at each position; the second copy starts at position ``n + 1``."""
    import matplotlib.pyplot as plt

    n = result.seq_len
    mean = result.loss.mean(0).numpy()
    pos = range(1, 2 * n + 1)  # the position of the token being predicted
    halves = result.loss_by_half()
    fig, ax = plt.subplots()
    ax.plot(pos, mean, marker=".", lw=1, label="mean over sequences")
    ax.axvline(n + 0.5, color="grey", ls=":", label="repeat starts")
    ax.hlines(halves["first_half"], 1, n, color="C1", label=f"first half mean {halves['first_half']:.2f}")
    ax.hlines(halves["second_half"], n + 1, 2 * n, color="C2",
              label=f"second half mean {halves['second_half']:.2f}")
    ax.set_xlabel("position (token)")
    ax.set_ylabel("loss (nats)")
    ax.set_title(_title(result, "Per-token loss on repeated random tokens"))
    ax.legend(fontsize="small")
    return fig


def plot_score_heatmaps(result: InductionRun):
    """The three layer x head score maps side by side, on a shared 0..1 scale."""
    import matplotlib.pyplot as plt

    L, H = result.scores["induction"].shape
    fig, axes = plt.subplots(1, 3, figsize=(11, max(3.5, 0.22 * L + 1.5)), constrained_layout=True)
    for ax, kind in zip(axes, HEAD_KINDS):
        im = ax.imshow(result.scores[kind].numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto",
                       origin="upper", interpolation="nearest")
        ax.set_title(kind.replace("_", "-") + " score")
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(H))
        ax.grid(False)
    fig.colorbar(im, ax=axes, label="score (mean fraction of attention on target)", shrink=0.9)
    fig.suptitle(_title(result, "Head scores"))
    return fig


def plot_attention_patterns(result: InductionRun, patterns: torch.Tensor, heads: list[str], seq: int = 0):
    """Attention patterns of some heads on one sequence; the induction stripe is at key = query - n + 1."""
    import matplotlib.pyplot as plt

    k = len(heads)
    fig, axes = plt.subplots(1, k, figsize=(3.8 * k + 1, 4), constrained_layout=True, squeeze=False)
    for ax, pat, name in zip(axes[0], patterns, heads):
        im = ax.imshow(pat.numpy(), vmin=0, vmax=1, cmap="Blues", interpolation="nearest")
        ax.set_title(f"head {name}")
        ax.set_xlabel("key position (token)")
        ax.set_ylabel("query position (token)")
        ax.grid(False)
    fig.colorbar(im, ax=axes[0].tolist(), label="attention weight (probability)", shrink=0.9)
    fig.suptitle(f"Attention of the top induction heads on sequence {seq}\n"
                 f"{result.model}, 1 of {result.n_seqs} sequences, seq_len {result.seq_len}")
    return fig
