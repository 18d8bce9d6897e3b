# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Week 3: induction heads
#
# **Question: does the model copy in context, and which attention heads do it?** An induction head
# looks back for the previous occurrence of the current token and attends to the token that came
# *after* it, so the model can predict "B" after seeing "A B ... A". It is the simplest circuit
# that needs two heads to compose (a previous-token head feeds the induction head's keys), and the
# IOI circuit of the coming weeks reuses the same parts (duplicate-token and induction heads detect
# the repeated name). Here we find them the standard way: feed sequences of random tokens repeated
# twice, and measure
#
# - the per-token loss on the first copy (unpredictable) and on the second (predictable by copying);
# - for every head, the fraction of attention on the three targets that define head types:
#   previous-token (query $i$ to key $i-1$), duplicate-token ($i$ to $i-n$, the earlier copy of the
#   same token) and induction ($i$ to $i-n+1$, the token after the earlier copy), with $n$ the
#   length of one copy.
#
# The code lives in `circuitgen.induction`; the scores are cross-checked against TransformerLens's
# own head detector.

# %% tags=["parameters"]
MODEL = "smollm2-135m"
SEED = 0
DEVICE = "cpu"
OUTPUT_DIR = None
SEQ_LEN = 50
N_SEQS = 8

# %%
from circuitgen import induction as ind
from circuitgen import runtime

model = runtime.start(MODEL, SEED, DEVICE)

# %% [markdown]
# ## Repeated random tokens
#
# Each sequence is BOS followed by `SEQ_LEN` random tokens and then the same tokens again. The
# tokens come from the whole vocabulary minus special tokens (BOS, EOS, padding, chat markers), are
# distinct within a sequence (so each repeated token has exactly one earlier copy), and are drawn
# from a `torch.Generator` seeded with `SEED`.

# %%
tokens = ind.repeated_tokens(model, SEQ_LEN, N_SEQS, seed=SEED)
print(f"{tokens.shape[0]} sequences of {tokens.shape[1]} tokens (BOS + 2 x {SEQ_LEN})")
print("first sequence starts:", tokens[0, :9].tolist())
print("decoded:", repr(model.tokenizer.decode(tokens[0, :9])))

# %% [markdown]
# One forward pass per batch gives both the loss at every position and the attention pattern of
# every head (`blocks.L.attn.hook_pattern`, `[batch, head, query, key]`).

# %%
result = ind.run(model, tokens)

# %% [markdown]
# ## In-context loss drop
#
# On the first copy the model can only guess; on the second, a model that copies from context
# should be nearly certain. Position $p$ on the x-axis is the token being predicted.

# %%
# NBVAL_CHECK_OUTPUT
import math

halves = result.loss_by_half()
print(f"mean loss, first copy:  {halves['first_half']:.2f} nats")
print(f"mean loss, second copy: {halves['second_half']:.2f} nats")
print(f"uniform guess over the sampled tokens: {math.log(len(ind.token_pool(model))):.2f} nats")

# %% tags=["hide-input"]
ind.plot_loss_by_position(result);

# %% [markdown]
# ## Head scores
#
# Each score is the mean, over sequences and over the query positions that have the target, of the
# fraction of the head's attention on that target (so it lies in 0..1). An induction head needs a
# previous-token head in an earlier layer to tell it which token came before each key.

# %% tags=["hide-input"]
ind.plot_score_heatmaps(result);

# %%
# NBVAL_CHECK_OUTPUT
for kind in ind.HEAD_KINDS:
    top = ind.top_heads(result.scores[kind], k=5)
    print(f"{kind:16s}", ", ".join(f"{h} {s:.2f}" for h, s in zip(top["head"], top["score"])))

# %% [markdown]
# ## What the top induction heads look at
#
# On one sequence, the induction stripe is the diagonal that starts at query $n+1$, key 2 and runs
# parallel to the main diagonal, $n - 1$ positions below it. Before the repeat starts there is
# nothing to copy, and these heads park their attention on BOS.

# %%
top_ind = ind.top_heads(result.scores["induction"], k=3)
heads = list(zip(top_ind["layer"], top_ind["head_index"]))

# %% tags=["hide-input"]
ind.plot_attention_patterns(result, result.patterns_of(heads), list(top_ind["head"]));

# %% [markdown]
# ## Cross-check with TransformerLens's head detector
#
# `transformer_lens.head_detector.detect_head` works on the `TransformerBridge`, but takes text,
# not token ids: it tokenizes the string itself. So the check draws sequences from word tokens
# (a space and letters) that decode to text and tokenize back to exactly the same ids. Its default
# `"mul"` measure divides by the attention of *all* $2n+1$ query rows, ours by the rows that have a
# target ($2n$ for previous-token, $n$ for the others); with distinct tokens the two agree after that
# rescaling, to float precision.

# %%
comparison = ind.compare_with_tl_detector(model, seq_len=10, n_seqs=2, seed=SEED)
comparison

# %%
# NBVAL_CHECK_OUTPUT
print("agrees with TransformerLens head detector:", bool(comparison["agrees"].all()))

# %%
# NBVAL_CHECK_OUTPUT
prev = ind.top_heads(result.scores["previous_token"], k=5)
for name, layer, score in zip(top_ind["head"], top_ind["layer"], top_ind["score"]):
    below = prev[(prev["layer"] < layer) & (prev["score"] > 0.5)]["head"].tolist()
    print(f"induction head {name} ({score:.2f}): strong previous-token heads below it: {below or 'none'}")
if not (result.scores["induction"] > 0.5).any():  # e.g. a random model
    print("no head has an induction score above 0.5: this model has no induction head, and the "
          "heads above are only its highest scores")

# %%
from myst_nb import glue

EARLY = 3  # the first tokens of the second copy, shown apart from the rest
n = result.seq_len
top5 = {kind: ind.top_heads(result.scores[kind], k=5) for kind in ind.HEAD_KINDS}
listed = {kind: ", ".join(f"{h} ({s:.2f})" for h, s in zip(top["head"], top["score"]))
          for kind, top in top5.items()}
best = {kind: top.iloc[0] for kind, top in top5.items()}
below = prev[(prev["layer"] < best["induction"]["layer"]) & (prev["score"] > 0.5)]["head"].tolist()
glue("w03_loss_first", halves["first_half"], display=False)
glue("w03_loss_second", halves["second_half"], display=False)
glue("w03_loss_uniform", math.log(len(ind.token_pool(model))), display=False)
glue("w03_loss_drop", 1 - halves["second_half"] / halves["first_half"], display=False)
glue("w03_n_early", EARLY, display=False)
glue("w03_loss_early", result.loss[:, n:n + EARLY].mean().item(), display=False)
glue("w03_loss_late", result.loss[:, n + EARLY:].mean().item(), display=False)
for kind, key in (("induction", "induction"), ("previous_token", "prev"), ("duplicate_token", "dup")):
    glue(f"w03_top_{key}", best[kind]["head"], display=False)
    glue(f"w03_top_{key}_score", float(best[kind]["score"]), display=False)
    glue(f"w03_{key}_heads", listed[kind], display=False)
glue("w03_n_strong_induction", int((result.scores["induction"] > 0.5).sum()), display=False)
glue("w03_n_heads", result.scores["induction"].numel(), display=False)
glue("w03_induction_layers", f"{top5['induction']['layer'].min()}-{top5['induction']['layer'].max()}",
     display=False)
glue("w03_n_layers", model.cfg.n_layers, display=False)
glue("w03_prev_below", ", ".join(below) or "none", display=False)
glue("w03_n_ind_dup_overlap", len(set(top5["induction"]["head"]) & set(top5["duplicate_token"]["head"])),
     display=False)
glue("w03_tl_max_diff", float(comparison["max_abs_diff"].max()), display=False)

# %% [markdown]
# ## What we found
#
# The numbers below are filled in from this run's outputs (the reference run uses SmolLM2-135M):
#
# - The model copies in context. On the first copy of random tokens its loss is
#   {glue:text}`w03_loss_first:.2f` nats, against {glue:text}`w03_loss_uniform:.2f` for a uniform
#   guess over the sampled tokens (a loss above the uniform guess means the model confidently
#   expects language, not noise);
#   on the second copy it is {glue:text}`w03_loss_second:.2f`, a drop of
#   {glue:text}`w03_loss_drop:.0%`.
#   The drop is not immediate: the first {glue:text}`w03_n_early` tokens of the second copy still
#   cost {glue:text}`w03_loss_early:.2f` nats on average, the rest {glue:text}`w03_loss_late:.2f`,
#   and the induction stripe in the attention plots likewise only lights up a few positions into
#   the repeat.
# - {glue:text}`w03_n_strong_induction` of the {glue:text}`w03_n_heads` heads put more than half
#   their attention on the induction target. The top-ranked induction head is
#   **{glue:text}`w03_top_induction`** (score {glue:text}`w03_top_induction_score:.2f`); the top
#   five ({glue:text}`w03_induction_heads`) sit in layers {glue:text}`w03_induction_layers` of
#   {glue:text}`w03_n_layers`, and their attention patterns show the clean stripe at offset $n-1$.
# - The strongest previous-token head is **{glue:text}`w03_top_prev`** (score
#   {glue:text}`w03_top_prev_score:.2f`; top five {glue:text}`w03_prev_heads`). The strong ones
#   (score above 0.5) below the top induction head are {glue:text}`w03_prev_below`: earlier
#   layers, as the two-head composition story requires. The top fives of induction and
#   duplicate-token heads share {glue:text}`w03_n_ind_dup_overlap` heads (the top duplicate-token
#   head is {glue:text}`w03_top_dup`, score {glue:text}`w03_top_dup_score:.2f`).
# - Our scores match TransformerLens's head detector once its different normalisation is taken
#   into account (largest difference {glue:text}`w03_tl_max_diff:.1e`).
# - Next week, the IOI task: the duplicate-token and induction heads found here are candidates for
#   the classes that detect the repeated subject name.
