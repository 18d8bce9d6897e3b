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
# # Week 1: the residual stream
#
# **Question.** When the model reads *"When Mary and John went to the store, John gave a drink
# to"*, where along its depth does the answer " Mary" appear in the residual stream, and which
# components (attention or MLP) write the most into it?
#
# Everything later in the series (patching, circuits, the scorer) reads and edits this stream, so
# we start by looking at it directly: its size layer by layer, what each layer adds, and what it
# would predict if we stopped early (the logit lens).

# %% tags=["parameters"]
MODEL = "smollm2-135m"  # the embedded reference model; "gpt2" needs the Hugging Face hub
SEED = 0
DEVICE = "cpu"
OUTPUT_DIR = None  # reference run writes nothing; other runs pass a folder
PROMPT = "When Mary and John went to the store, John gave a drink to"
ANSWER = " Mary"
OTHER = " John"

# %%
import matplotlib.pyplot as plt

from circuitgen import residual, runtime

model = runtime.start(MODEL, SEED, DEVICE)
n_layers = model.cfg.n_layers

# %% [markdown]
# ## Running with a cache
# `run_with_cache` runs one forward pass and keeps every hooked activation. BOS is prepended (the
# project's policy, see the lab notebook), so position 0 is the BOS token.

# %%
tokens = model.to_tokens(PROMPT)
str_tokens = model.to_str_tokens(PROMPT)
logits, cache = model.run_with_cache(tokens)
answer_id = model.to_single_token(ANSWER)
other_id = model.to_single_token(OTHER)

# %%
# NBVAL_CHECK_OUTPUT
print("tokens:", len(str_tokens), str_tokens)
print("logits shape:", tuple(logits.shape))
print("top prediction:", repr(model.tokenizer.decode(logits[0, -1].argmax())))
print(f"logit difference {ANSWER!r} - {OTHER!r}: "
      f"{(logits[0, -1, answer_id] - logits[0, -1, other_id]).item():.2f}")

# %% [markdown]
# ## How big is the residual stream, layer by layer?
# The stream is a sum: embeddings plus every layer's attention and MLP output. Its norm usually
# grows with depth; the first position (BOS) often carries an outsized norm because many heads
# use it as a resting place for attention.

# %%
norms = residual.residual_norms(cache, n_layers)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(9, 5))
im = ax.imshow(norms.log10().numpy(), aspect="auto", cmap="viridis")
ax.set_xticks(range(len(str_tokens)), [repr(t)[1:-1] for t in str_tokens], rotation=60, ha="right")
ax.set_xlabel("position (token)")
ax.set_ylabel("residual stream entering layer (last row: after the final layer)")
ax.set_title(f"Residual stream norm by layer and position ({MODEL}, 1 prompt)")
fig.colorbar(im, label="log10 L2 norm")
plt.show()

# %% [markdown]
# ## What does each layer write at the final position?
# Each attention layer and each MLP adds a vector to the stream. Their norms say how much each
# writes at END, the position whose output must be " Mary".

# %%
writes = residual.component_writes(cache, n_layers, pos=-1)

# %% tags=["hide-input"]
ax = writes.plot(marker="o", figsize=(8, 4))
ax.set_xlabel("layer")
ax.set_ylabel("L2 norm of the write at END")
ax.set_title(f"Attention vs MLP writes at the final position ({MODEL}, 1 prompt)")
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
ratio = writes["mlp"].sum() / writes["attention"].sum()
print(f"MLP / attention total write norm at END: {ratio:.1f}")
print("layer with the largest attention write:", int(writes["attention"].idxmax()))
print("layer with the largest MLP write:", int(writes["mlp"].idxmax()))

# %% [markdown]
# ## The logit lens
# Apply the final normalisation and the unembedding to the stream after each layer, as if the
# model stopped there (TransformerLens's `logit_lens`). With compatibility mode on, the unembedding
# is centred, so only logit *differences* between tokens are meaningful; we track " Mary" - " John".

# %%
lens = residual.logit_lens_answer(model, tokens, answer_id, other_id)

# %% tags=["hide-input"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(range(len(lens)), lens["logit_diff"], marker="o")
ax1.axhline(0, color="grey", lw=1)
ax1.set_xlabel("residual stream after layer (0 = embeddings)")
ax1.set_ylabel(f"logit difference {ANSWER!r} - {OTHER!r} (nats)")
ax1.set_title("Logit lens: answer minus subject")
ax2.semilogy(range(len(lens)), lens["answer_rank"] + 1, marker="o", color="C1")
ax2.set_xlabel("residual stream after layer (0 = embeddings)")
ax2.set_ylabel(f"rank of {ANSWER!r} + 1 (log scale)")
ax2.set_title("Logit lens: rank of the answer")
fig.suptitle(f"{MODEL}, 1 prompt")
plt.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
# None where it never happens (a model that does not do the task on this prompt, e.g. a random one)
first_positive = next((i for i in range(len(lens)) if (lens["logit_diff"][i:] > 0).all()), None)
first_top = next((i for i in range(len(lens)) if (lens["answer_rank"][i:] == 0).all()), None)
if first_positive is None:
    print("logit difference is not positive at the final output: this model prefers", repr(OTHER))
else:
    print("logit difference stays positive from stack entry:", lens["entry"][first_positive])
if first_top is None:
    print(f"answer is not top-1 at the final output (final rank {int(lens['answer_rank'].iloc[-1])})")
else:
    print("answer stays top-1 from stack entry:", lens["entry"][first_top])
print(f"final logit difference: {lens['logit_diff'].iloc[-1]:.2f}")

# %%
from myst_nb import glue


def entry_text(index: int | None) -> str:
    if index is None:
        return "no stack entry (not even the final output)"
    entry = lens["entry"][index]
    return "the final output" if entry == "final_post" else f"the stream entering layer {entry.split('_')[0]}"


n_before = len(lens) if first_positive is None else first_positive
before = lens["logit_diff"][:n_before]
glue("w01_logit_diff", float(lens["logit_diff"].iloc[-1]), display=False)
glue("w01_n_layers", n_layers, display=False)
glue("w01_positive_from", entry_text(first_positive), display=False)
glue("w01_n_positive", len(lens) - n_before, display=False)
glue("w01_n_entries", len(lens), display=False)
glue("w01_top_from", entry_text(first_top), display=False)
glue("w01_n_before", n_before, display=False)
glue("w01_n_before_other", int((before < 0).sum()), display=False)
glue("w01_mlp_attn_ratio", float(ratio), display=False)
glue("w01_top_attn_layer", int(writes["attention"].idxmax()), display=False)
glue("w01_top_mlp_layer", int(writes["mlp"].idxmax()), display=False)

# %% [markdown]
# ## What we found
# - The last stack entry of the logit lens reproduces the model's own logits (TransformerLens
#   checks this), so the lens is reading the real readout: a logit difference of
#   {glue:text}`w01_logit_diff:.2f` nats for " Mary" over " John".
# - On this prompt the answer is only decided late: the logit difference in favour of " Mary"
#   stays positive only from {glue:text}`w01_positive_from` on (the last
#   {glue:text}`w01_n_positive` of {glue:text}`w01_n_entries` stack entries, for a model of
#   {glue:text}`w01_n_layers` layers), and " Mary" stays the top token only from
#   {glue:text}`w01_top_from`. Before that, {glue:text}`w01_n_before_other` of the
#   {glue:text}`w01_n_before` earlier entries favour the repeated name " John", the trap the IOI
#   circuit must overcome.
# - Summed over layers, the MLPs' writes at END total {glue:text}`w01_mlp_attn_ratio:.1f` times
#   the attention layers' (in norm); the largest MLP write comes from layer
#   {glue:text}`w01_top_mlp_layer` and the largest attention write from layer
#   {glue:text}`w01_top_attn_layer`. Norm is not importance, which is why week 5 measures
#   importance causally, with patching.
