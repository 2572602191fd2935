"""GENA-LM DNA language models: modeling, tokenization, genome access, training and export.

Importing the package (or any of its modules) changes nothing in the process: no environment variables, torch
settings, warnings filters or logging handlers. One addition, not a change: `genalm_models.modeling_gena` registers
its own model type `gena-lm` with transformers' Auto classes when imported (transformers' sanctioned extension point;
its `bert` type is left alone). Process-wide settings for fast CPU inference (huge pages for torch's
CPU tensors, glibc keeping freed memory) are applied by the entry points that want them:
`genalm_models.process_settings.apply_process_settings`. Nothing here imports Kipoi: the Kipoi plugin
(`kipoi_genalm`) builds on this package, never the other way round (tests/test_layering.py).
"""
