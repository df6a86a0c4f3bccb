"""Batched greedy decoding with the KV cache, for IFD rationales and evaluation answers.

Prompts are sorted by length so a batch holds similar lengths; the prompts' shared prefix (the
task instruction) is run once and its keys/values copied into every batch; each row's own text
is left-padded after that prefix; the cache is preallocated so decoding writes in place; rows
that reach a stop token leave the batch. The log-probability of every chosen token is kept:
IFD's conditioned loss is read off it instead of re-running prompt + rationale.
"""

from __future__ import annotations

from dataclasses import dataclass


def stop_token_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else ([ids] if isinstance(ids, int) else list(ids))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding stays small.

    >>> length_sorted_batches([3, 9, 1, 7], 2)
    [[1, 3], [0, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Length of the token prefix all sequences share.

    >>> common_prefix_len([[1, 2, 3], [1, 2, 4], [1, 2]])
    2
    """
    if not seqs:
        return 0
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


@dataclass
class Greedy:
    """Greedy continuations, in the input order: prompt ids, new ids, and log p of each new id."""

    prompt_ids: list[list[int]]
    new_ids: list[list[int]]
    new_logprobs: list[list[float]]


def _preallocate(cache, extra: int) -> None:
    """Give every layer of a DynamicCache room for ``extra`` more tokens, written in place.

    DynamicCache grows by ``torch.cat`` on every decoding step, copying the whole cache (the
    repeated shared prefix included) each time; that was about a quarter of decoding time here.
    """
    from transformers.cache_utils import DynamicLayer

    for layer in getattr(cache, "layers", []):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel() > 0:
            layer.__class__ = _PreallocatedLayer
            layer.reserve(extra)


def _preallocated_layer_class():
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        """A DynamicLayer whose keys/values are views into a buffer with spare room."""

        def reserve(self, extra: int) -> None:
            n = self.keys.shape[-2]
            for name in ("keys", "values"):
                t = getattr(self, name)
                buf = t.new_empty((*t.shape[:-2], n + extra, t.shape[-1]))
                buf[..., :n, :] = t
                setattr(self, "_" + name, buf)
                setattr(self, name, buf[..., :n, :])
            self._n = n

        def update(self, key_states, value_states, *args, **kwargs):
            n, m = self._n, key_states.shape[-2]
            if n + m > self._keys.shape[-2]:  # out of room: fall back to growing
                self.keys, self.values = self._keys[..., :n, :], self._values[..., :n, :]
                self.reserve(max(m, n))
            self._keys[..., n:n + m, :] = key_states
            self._values[..., n:n + m, :] = value_states
            self._n = n + m
            self.keys, self.values = self._keys[..., :self._n, :], self._values[..., :self._n, :]
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            self._keys, self._values = self._keys[indices, ...], self._values[indices, ...]
            self.keys, self.values = self._keys[..., :self._n, :], self._values[..., :self._n, :]

    return PreallocatedLayer


_PreallocatedLayer = None  # built on first use (transformers is imported lazily)


MIN_SHARED_PREFIX = 8  # below this, computing the prefix once is not worth a separate pass


def greedy_decode(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8,
                  share_prefix: bool = True) -> Greedy:
    """Greedy continuations of ``prompts`` (see the module docstring for how it is batched).

    Explicit position ids keep every real token at the position it has unpadded, so a prompt's
    result does not depend on the batch it lands in (up to float rounding).
    """
    # One piece on purpose: the prefill, the KV-cache step loop and the per-row stop bookkeeping share
    # tensors that would otherwise be passed around every step of the hot loop.
    import copy

    import torch

    global _PreallocatedLayer
    if _PreallocatedLayer is None:
        _PreallocatedLayer = _preallocated_layer_class()
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    stops = torch.tensor(stop_token_ids(model, tokenizer) or [-1])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(stops[0])
    device = next(model.parameters()).device
    new_ids: list[list[int]] = [[] for _ in prompts]
    new_lp: list[list[float]] = [[] for _ in prompts]
    if not prompts:
        return Greedy(encoded, new_ids, new_lp)

    n_prefix = common_prefix_len(encoded) if share_prefix and len(prompts) > 1 else 0
    n_prefix = min(n_prefix, min(len(e) for e in encoded) - 1)  # every row keeps >= 1 own token
    prefix_cache = None
    if n_prefix >= MIN_SHARED_PREFIX:
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([encoded[0][:n_prefix]], device=device), use_cache=True,
                        logits_to_keep=1)
        prefix_cache = out.past_key_values
        if not hasattr(prefix_cache, "batch_repeat_interleave"):
            prefix_cache, n_prefix = None, 0
    else:
        n_prefix = 0

    suffixes = [e[n_prefix:] for e in encoded]
    for batch in length_sorted_batches([len(s) for s in suffixes], batch_size):
        width = max(len(suffixes[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), n_prefix + width), dtype=torch.long)
        mask[:, :n_prefix] = 1
        for row, i in enumerate(batch):
            s = suffixes[i]
            ids[row, width - len(s):] = torch.tensor(s)
            mask[row, n_prefix + width - len(s):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, n_prefix:]
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(batch))
        rows = list(batch)  # input indices of the rows still decoding
        with torch.inference_mode():
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                        past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            _preallocate(cache, max_new_tokens)
            for step in range(max_new_tokens):
                logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
                best_lp, best = logp.max(dim=-1)
                best_l, best_lp_l = best.tolist(), best_lp.tolist()
                finished = torch.isin(best.cpu(), stops)
                for r, i in enumerate(rows):
                    if not finished[r]:
                        new_ids[i].append(best_l[r])
                        new_lp[i].append(best_lp_l[r])
                if step == max_new_tokens - 1 or bool(finished.all()):
                    break
                keep = (~finished).nonzero().flatten()
                if len(keep) < len(rows):
                    rows = [rows[k] for k in keep.tolist()]
                    cache.batch_select_indices(keep.to(device))
                    mask, positions, best = mask[keep], positions[keep], best[keep.to(best.device)]
                mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
                positions = positions[:, -1:] + 1
                out = model(input_ids=best[:, None].to(device), attention_mask=mask.to(device),
                            position_ids=positions.to(device), past_key_values=cache, use_cache=True)
    return Greedy(encoded, new_ids, new_lp)
