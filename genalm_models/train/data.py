"""Training data: a deterministic global-batch sampler, MLM and task datasets, and the collate function.

Every random choice is keyed on (seed, epoch, sample index) or (seed, step), never on the rank or on how far a
process got, so that
- 1 process with `grad_accum=k` and k processes (DDP) see exactly the same micro-batches,
- a run resumed from step s continues with exactly the data the uninterrupted run would have used.
Global step t uses positions [t*G, (t+1)*G) of an endless stream of per-epoch permutations (G = global batch).
Micro-batch u = accum_step * world_size + rank takes positions [t*G + u*B, t*G + (u+1)*B).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from ..pretrain.masking import MaskingConfig, mask_tokens, maybe_shorten, sample_rng
from ..pretrain.packing import PackedSamples
from ..tasks.base import Example
from ..tokenizer import GenaTokenizer, nucleotide_labels_to_tokens


@dataclass(frozen=True)
class SampleRef:
    epoch: int
    index: int
    max_tokens: int | None = None  # RMT curriculum: this step's token budget


class GlobalBatchSampler:
    """Yields this rank's micro-batches (lists of SampleRef) for steps [start_step, steps)."""

    def __init__(self, n_samples: int, micro_batch: int, world_size: int, rank: int, grad_accum: int, seed: int,
                 start_step: int, steps: int, shuffle: bool = True,
                 max_tokens_at: Callable[[int], int | None] | None = None):
        if n_samples < 1:
            raise ValueError("the training set is empty")
        self.n, self.micro_batch, self.world, self.rank = n_samples, micro_batch, world_size, rank
        self.accum, self.seed, self.start_step, self.steps, self.shuffle = grad_accum, seed, start_step, steps, shuffle
        self.max_tokens_at = max_tokens_at or (lambda step: None)
        self._perm_epoch, self._perm = -1, None

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.world * self.accum

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = (np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle
                          else np.arange(self.n))
            self._perm_epoch = epoch
        return self._perm

    def micro_batch_refs(self, step: int, accum_step: int) -> list[SampleRef]:
        u = accum_step * self.world + self.rank
        first = step * self.global_batch + u * self.micro_batch
        budget = self.max_tokens_at(step)
        refs = []
        for position in range(first, first + self.micro_batch):
            epoch, offset = divmod(position, self.n)
            refs.append(SampleRef(epoch, int(self._permutation(epoch)[offset]), budget))
        return refs

    def __iter__(self) -> Iterator[list[SampleRef]]:
        for step in range(self.start_step, self.steps):
            for accum_step in range(self.accum):
                yield self.micro_batch_refs(step, accum_step)

    def __len__(self) -> int:
        return (self.steps - self.start_step) * self.accum


class MLMDataset(torch.utils.data.Dataset):
    """Packed corpus samples, masked on the fly (GENA-LM recipe)."""

    def __init__(self, packed: PackedSamples, tokenizer: GenaTokenizer, masking: MaskingConfig, seed: int):
        self.packed, self.masking, self.seed = packed, masking, seed
        self.mask_id, self.vocab_size = tokenizer.mask_id, tokenizer.vocab_size
        self.special_ids = set(tokenizer.special_ids)
        self.first_regular_id = max(self.special_ids) + 1

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, ref: SampleRef) -> dict:
        ids = self.packed[ref.index]
        if ref.max_tokens is not None:
            ids = ids[: ref.max_tokens]
        ids = maybe_shorten(ids, self.masking, sample_rng(self.seed, ref.epoch, ref.index, stream=1))
        inputs, labels = mask_tokens(ids, self.masking, sample_rng(self.seed, ref.epoch, ref.index, stream=2),
                                     self.mask_id, self.special_ids, self.vocab_size, self.first_regular_id)
        return {"ids": inputs, "mlm_labels": labels}


class TaskDataset(torch.utils.data.Dataset):
    """Examples of a downstream task, tokenized once. Token tasks get per-token labels through the offsets.

    Shifted windows: a sequence example whose meta holds a `context` (its window plus `context_offset` bp on each
    side, e.g. the promoter task's `train_shift`) is cut at a random offset in [-context_offset, +context_offset]
    and tokenized each time a SampleRef draws it; the offset is keyed on (seed, epoch, index), so DDP and resumed
    runs see the same windows. Indexing by int (evaluation) gives the unshifted window.
    """

    def __init__(self, examples: list[Example], tokenizer: GenaTokenizer, token_level: bool, seed: int = 0):
        self.examples, self.token_level = examples, token_level
        self.tokenizer, self.seed = tokenizer, seed
        self.shiftable = [not token_level and "context" in e.meta for e in examples]
        seqs = [e.seq for e in examples]
        if token_level:
            encoded = tokenizer.encode_batch_with_offsets(seqs, add_special_tokens=False)
            self.ids = [np.asarray(ids, dtype=np.int64) for ids, _ in encoded]
            self.labels, self.masks = [], []
            for example, (_, offsets) in zip(examples, encoded):
                offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
                self.labels.append(nucleotide_labels_to_tokens(np.asarray(example.label), offsets, reduce="any")
                                   .astype(np.float32))
                if example.label_mask is None:
                    self.masks.append(np.ones(len(offsets), dtype=bool))
                else:  # a token carries a label only if every nucleotide it covers does
                    covered = nucleotide_labels_to_tokens(np.asarray(example.label_mask, dtype=np.float32),
                                                          offsets, reduce="mean")
                    self.masks.append(np.asarray(covered).reshape(-1) >= 1.0)
        else:
            self.ids = [np.asarray(ids, dtype=np.int64) for ids in tokenizer.encode_batch(seqs, False)]

    def __len__(self) -> int:
        return len(self.examples)

    def shifted_sequence(self, index: int, epoch: int) -> str:
        """The window of example `index` at this draw's random offset (see the class docstring)."""
        example = self.examples[index]
        context, offset = example.meta["context"], int(example.meta["context_offset"])
        shift = int(sample_rng(self.seed, epoch, index, stream=3).integers(-offset, offset + 1))
        return context[offset + shift: offset + shift + len(example.seq)]

    def __getitem__(self, ref: SampleRef | int) -> dict:
        index = ref.index if isinstance(ref, SampleRef) else ref
        if isinstance(ref, SampleRef) and self.shiftable[index]:
            seq = self.shifted_sequence(index, ref.epoch)
            return {"ids": np.asarray(self.tokenizer.encode_batch([seq], False)[0], dtype=np.int64),
                    "labels": np.asarray(self.examples[index].label)}
        item = {"ids": self.ids[index]}
        if self.token_level:
            item["labels"] = self.labels[index]
            item["labels_mask"] = self.masks[index]
        else:
            item["labels"] = np.asarray(self.examples[index].label)
        return item


def collate(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sample of the micro-batch."""
    width = max(1, max(len(it["ids"]) for it in items))
    batch = len(items)
    ids = np.full((batch, width), pad_id, dtype=np.int64)
    mask = np.zeros((batch, width), dtype=np.int64)
    for i, it in enumerate(items):
        ids[i, : len(it["ids"])] = it["ids"]
        mask[i, : len(it["ids"])] = 1
    out = {"ids": torch.from_numpy(ids), "mask": torch.from_numpy(mask)}
    if "mlm_labels" in items[0]:  # masked LM: -100 where no loss
        labels = np.full((batch, width), -100, dtype=np.int64)
        for i, it in enumerate(items):
            labels[i, : len(it["mlm_labels"])] = it["mlm_labels"]
        out["labels"] = torch.from_numpy(labels)
    elif "labels_mask" in items[0]:  # token task: (T, C) labels
        first = items[0]["labels"]
        labels = np.zeros((batch, width, first.shape[1]), dtype=np.float32)
        lmask = np.zeros((batch, width), dtype=bool)
        for i, it in enumerate(items):
            labels[i, : len(it["labels"])] = it["labels"]
            lmask[i, : len(it["labels_mask"])] = it["labels_mask"]
        out["labels"], out["labels_mask"] = torch.from_numpy(labels), torch.from_numpy(lmask)
    else:  # sequence labels: class ids, multi-label vectors or regression targets
        out["labels"] = torch.from_numpy(np.stack([np.asarray(it["labels"]) for it in items]))
    return out
