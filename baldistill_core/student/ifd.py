"""IFD (Instruction-Following Difficulty) scored by the student itself.

For a candidate prompt x (``prompts.student_prompt``, the template the student is trained on) the
student greedily writes its own rationale y, then

    IFD(x) = PPL(y | x) / PPL(y),   PPL = exp(mean token cross-entropy over the y tokens only)

``loss_cond`` is the mean cross-entropy of y given x, ``loss_uncond`` that of y after a single
start token (the tokenizer's BOS, else its EOS) so that every y token is scored in both. The
Cherry-LLM variant ranks by ``loss_cond / loss_uncond`` and drops ratios > 1.

Speed: ``loss_cond`` is read off the greedy decoding itself — the decoder already computes
log p(y_t | x, y_<t) for every token it picks, so re-running x + y through the model would
repeat that work; ``loss_uncond`` comes from one batched, right-padded forward pass per batch
in which only the y positions go through the LM head. Decoding is batched, length-sorted, uses
the KV cache and computes the prompts' shared prefix (the instruction) once.
"""

from __future__ import annotations

from baldistill_core.errors import ConfigError

import math
from dataclasses import dataclass
from typing import Literal

from baldistill_core import store
from baldistill_core.student import model as student

Variant = Literal["ppl_ratio", "cherry"]
VARIANTS = ("ppl_ratio", "cherry")


@dataclass(frozen=True)
class IFDResult:
    score: float | None   # None = dropped (cherry ratio > 1) or no rationale generated
    loss_cond: float      # mean CE of the rationale tokens given the prompt
    loss_uncond: float    # mean CE of the rationale tokens alone
    rationale: str


def ifd_from_losses(loss_cond: float, loss_uncond: float, variant: Variant = "ppl_ratio") -> float | None:
    """The IFD score from the two mean losses.

    >>> round(ifd_from_losses(2.0, 3.0), 4)   # exp(2) / exp(3)
    0.3679
    >>> ifd_from_losses(2.0, 4.0, "cherry")
    0.5
    >>> ifd_from_losses(3.0, 2.0, "cherry") is None   # Cherry-LLM drops ratios > 1
    True
    """
    if variant not in VARIANTS:
        raise ConfigError(f"IFD variant {variant!r} is not one of {', '.join(VARIANTS)}; set ifd.variant to one of them")
    if math.isnan(loss_cond) or math.isnan(loss_uncond):
        return None
    if variant == "ppl_ratio":
        return math.exp(loss_cond - loss_uncond)
    if loss_uncond <= 0:
        return None
    ratio = loss_cond / loss_uncond
    return None if ratio > 1 else ratio


def start_token_id(tokenizer) -> int:
    """The single token y is conditioned on when scored alone."""
    tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if tid is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token to start an unconditioned sequence")
    return tid


def _lm_head_split(model):
    """(backbone, lm_head) when logits are exactly ``lm_head(last hidden state)``, else None.

    Then only the scored positions go through the (vocabulary-sized) head.
    """
    cfg = getattr(model, "config", None)
    if cfg is None or any(getattr(cfg, a, None) not in (None, 1.0) for a in
                          ("final_logit_softcapping", "logit_scale", "logits_scaling")):
        return None
    try:
        backbone, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if backbone is None or head is None or backbone is model:
        return None
    return backbone, head


def target_losses(model, sequences: list[list[int]], target_starts: list[int], *, batch_size: int = 8) -> list[float]:
    """Mean cross-entropy of ``seq[start:]`` given ``seq[:start]``, for every sequence.

    Batched: length-sorted, right-padded (positions stay 0..n-1 without position ids), one forward
    pass per batch, all targets gathered at once. ``start`` must be >= 1; an empty target gives NaN.
    """
    import torch

    if any(s < 1 for s in target_starts):
        raise ValueError("every target needs at least one context token before it (start >= 1)")
    device = next(model.parameters()).device
    split = _lm_head_split(model)
    result = [float("nan")] * len(sequences)
    for batch in student.length_sorted_batches([len(s) for s in sequences], batch_size):
        width = max(len(sequences[i]) for i in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, cols = [], []
        for r, i in enumerate(batch):
            seq = sequences[i]
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
            for pos in range(target_starts[i], len(seq)):
                rows.append(r)
                cols.append(pos)
        if not rows:
            continue
        rows_t, cols_t = torch.tensor(rows), torch.tensor(cols)
        with torch.inference_mode():
            if split is not None:
                backbone, head = split
                hidden = backbone(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
                logits = head(hidden[rows_t.to(device), (cols_t - 1).to(device)])
            else:
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                logits = logits[rows_t.to(device), (cols_t - 1).to(device)]
            ce = torch.nn.functional.cross_entropy(logits.float(), ids[rows_t, cols_t].to(device), reduction="none")
            sums = torch.zeros(len(batch), device=device).index_add_(0, rows_t.to(device), ce)
            counts = torch.bincount(rows_t, minlength=len(batch)).to(device)
        for r, i in enumerate(batch):
            if counts[r] > 0:
                result[i] = float(sums[r] / counts[r])
    return result


def score(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8,
          variant: Variant = "ppl_ratio") -> list[IFDResult]:
    """IFD of every prompt, in the input order (the prompts are ``prompts.student_prompt`` output)."""
    if variant not in VARIANTS:
        raise ValueError(f"IFD variant {variant!r} is not one of {', '.join(VARIANTS)}")
    greedy = student.greedy_decode(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    start = start_token_id(tokenizer)
    loss_uncond = target_losses(model, [[start, *y] for y in greedy.new_ids], [1] * len(prompts),
                                batch_size=batch_size)
    results = []
    for y, lps, lu in zip(greedy.new_ids, greedy.new_logprobs, loss_uncond):
        lc = -sum(lps) / len(lps) if lps else float("nan")
        results.append(IFDResult(score=ifd_from_losses(lc, lu, variant) if y else None, loss_cond=lc,
                                 loss_uncond=lu, rationale=tokenizer.decode(y, skip_special_tokens=True)))
    return results


def score_cached(conn, checkpoint_id: str, model, tokenizer, items: list[dict], **kw) -> dict[str, IFDResult]:
    """IFD of ``items`` (``{"key", "prompt"}``), reusing scores cached for this checkpoint.

    ``checkpoint_id`` must change whenever the student does (e.g. run id + stage + adapter hash);
    ``key`` identifies the example. The stored key adds a hash of the exact prompt
    (``key#<prompt hash>``), so a prompt built differently (another clip, instruction or
    template) is scored afresh instead of reusing another prompt's score. Only missing ones are scored.
    """
    from baldistill_core.task.view import prompt_hash

    variant = kw.get("variant", "ppl_ratio")
    keys = [it["key"] for it in items]
    if len(set(keys)) != len(keys):
        raise ValueError("score_cached: item keys must be unique")
    stored = {it["key"]: f"{it['key']}#{prompt_hash(it['prompt'])}" for it in items}
    back = {v: k for k, v in stored.items()}
    found: dict[str, IFDResult] = {}
    ckeys = list(stored.values())
    for chunk in range(0, len(ckeys), 500):
        part = ckeys[chunk:chunk + 500]
        marks = ",".join("?" * len(part))
        for r in store.rows(conn, f"SELECT * FROM ifd_cache WHERE checkpoint = ? AND variant = ? "
                                  f"AND example_key IN ({marks})", [checkpoint_id, variant, *part]):
            found[back[r["example_key"]]] = IFDResult(r["score"], r["loss_cond"], r["loss_uncond"], r["rationale"])
    todo = [it for it in items if it["key"] not in found]
    if todo:
        fresh = score(model, tokenizer, [it["prompt"] for it in todo], **kw)
        with store.transaction(conn):
            conn.executemany(
                "INSERT OR REPLACE INTO ifd_cache(checkpoint, example_key, variant, score, loss_cond, loss_uncond, "
                "rationale) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(checkpoint_id, stored[it["key"]], variant, res.score, _finite(res.loss_cond), _finite(res.loss_uncond),
                  res.rationale) for it, res in zip(todo, fresh)],
            )
        found.update({it["key"]: res for it, res in zip(todo, fresh)})
    return {k: found[k] for k in keys}


def _finite(x: float) -> float:
    # SQLite binds NaN as NULL, which the NOT NULL loss columns refuse; an empty rationale (NaN
    # loss, score None) is stored as +inf instead and still reads back with score None.
    return x if not math.isnan(x) else float("inf")


def select_top(scores: dict[str, IFDResult], k: int) -> list[str]:
    """The ``k`` keys with the highest IFD (ties broken by key); unscored (None) ones never picked.

    >>> r = lambda s: IFDResult(s, 0.0, 0.0, "")
    >>> select_top({"b": r(0.5), "a": r(0.5), "c": r(0.9), "d": r(None)}, 2)
    ['c', 'a']
    """
    scored = [(key, res.score) for key, res in scores.items() if res.score is not None]
    scored.sort(key=lambda kv: (-kv[1], kv[0]))
    return [key for key, _ in scored[: max(k, 0)]]
