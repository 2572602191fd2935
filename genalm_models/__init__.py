"""GENA-LM DNA language models: modeling, tokenization, genome access, training and export.

Importing the package asks PyTorch to back its large CPU tensors with transparent huge pages, unless the user chose
otherwise: torch reads THP_MEM_ALLOC_ENABLE at its first CPU allocation, so this only takes effect when nothing was
allocated before. Huge pages cut the TLB misses of the multi-MB GEMM operands; `bench/bench_inference.py` prints
whether they were on ("huge pages" in its hardware line).
"""
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
