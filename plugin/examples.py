"""`kipoi get-example GENA-LM/<model> -o DIR`: copy the example BED and FASTA that a model folder ships.

kipoi 0.8.6's get-example copies only the dataloader examples declared as remote files (`{url:, md5:}`); those of
the GENA-LM dataloader are files of the model folder (so that `kipoi test` runs offline), which kipoi would report
as "downloaded" while writing nothing. The dataloader's `download_example` calls `copy_examples` instead: the files
(and a FASTA's .fai/.gzi indexes) are copied into DIR, and the returned keyword arguments name the copies.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Mapping

FASTA_INDEXES = (".fai", ".gzi")


def copy_examples(args: Mapping[str, Any], folder: str | Path | None, output_dir: str | Path,
                  absolute_path: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """The example keyword arguments of a dataloader whose `args` are `args`, with the example files of `folder`
    copied to `output_dir` (nothing is copied on dry_run). Remote examples are left to kipoi's own code."""
    from kipoi.specs import example_kwargs
    from kipoi_utils.external.related.fields import UNSPECIFIED

    out = Path(output_dir)
    kwargs: dict[str, Any] = {}
    remote = {}
    for name, arg in args.items():
        example = arg.example
        if isinstance(example, UNSPECIFIED):
            continue
        if not isinstance(example, str):
            remote[name] = arg
            continue
        source = Path(folder) / example if folder is not None else None
        if source is None or not source.is_file():
            if name.endswith("_file"):
                print(f"kipoi get-example: the example {name}={example!r} is not a file of the model folder "
                      f"{folder}; copy it from there yourself", file=sys.stderr)
            kwargs[name] = example
            continue
        target = out / source.name
        if not dry_run:
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            for suffix in FASTA_INDEXES:
                index = source.with_name(source.name + suffix)
                if index.is_file():
                    shutil.copyfile(index, out / index.name)
        kwargs[name] = str(target.resolve()) if absolute_path else str(target)
    if remote:
        kwargs.update(example_kwargs(remote, str(out), absolute_path=absolute_path, dry_run=dry_run))
    return kwargs
