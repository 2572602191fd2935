"""Imports point one way, and importing changes nothing (issue 16, part 5).

(a) genalm_models knows nothing of Kipoi: no module of it imports kipoi, kipoiseq or kipoi_genalm, neither in its
    source (an AST scan) nor when every module is imported in a fresh interpreter (sys.modules);
(b) importing genalm_models and kipoi_genalm, all their modules included, leaves os.environ, torch's settings, the
    warnings filters, logging's handlers and kipoi's writers and test comparison as they were;
(c) the kipoi_compat patches and the process settings are applied by the entry points (the Kipoi model and
    dataloader when Kipoi loads them, the CLIs), once, with one log line, and a kipoi other than the one they were
    written for gets a clear warning;
and the exporter's Kipoi-free folder is the Kipoi folder without its Kipoi files (export.py / zoo_export.py).
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "genalm_models"
PLUGIN = ROOT / "plugin"
KIPOI_PACKAGES = ("kipoi", "kipoiseq", "kipoi_utils", "kipoi_conda", "kipoi_genalm")
BUNDLED = PLUGIN / "zoo" / "GENA-LM" / "promoter_300"


def module_names(folder: Path, package: str) -> list[str]:
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        if "zoo" in parts or "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join((package,) + parts))
    return names


def run_python(pieces: list[str], tmp_path: Path, env: dict | None = None) -> dict:
    """Run the code pieces (each dedented) in a fresh interpreter (HOME in tmp_path: importing kipoi writes
    ~/.kipoi); the code prints one JSON document last."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("THP_MEM_ALLOC_ENABLE", "LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY",
                                "DNNL_PRIMITIVE_CACHE_CAPACITY")}
    environment.update(HOME=str(tmp_path), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    environment.update(env or {})
    result = subprocess.run([sys.executable, "-c", "\n".join(map(textwrap.dedent, pieces))],
                            capture_output=True, text=True,
                            env=environment, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def imported_top_level(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value).split(".")[0])
    return names


# ---- (a) ---------------------------------------------------------------------------------------------------------
def test_no_library_file_imports_kipoi_or_the_plugin():
    offenders = {str(path.relative_to(ROOT)): sorted(imported_top_level(path) & set(KIPOI_PACKAGES))
                 for path in sorted(LIBRARY.rglob("*.py"))}
    assert len(offenders) > 30  # the scan saw the library
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_scan_sees_every_form_of_import(tmp_path):
    """The AST scan above is not blind: it finds kipoi imported as `import`, `from ... import` and importlib."""
    probe = tmp_path / "probe.py"
    probe.write_text("import kipoi.writers\nfrom kipoi_genalm.folder import x\nimport importlib\n"
                     "def f():\n    return importlib.import_module('kipoiseq.transforms')\n")
    assert imported_top_level(probe) >= {"kipoi", "kipoi_genalm", "kipoiseq"}


def test_importing_every_library_module_imports_no_kipoi(tmp_path):
    names = module_names(LIBRARY, "genalm_models")
    result = run_python([f"""
        import importlib, json, sys
        for name in {names!r}:
            importlib.import_module(name)
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {KIPOI_PACKAGES!r})))
        """], tmp_path)
    assert len(names) > 30 and "genalm_models.export" in names and "genalm_models.model_folder" in names
    assert result == []


# ---- (b) ---------------------------------------------------------------------------------------------------------
STATE = """
    def state():
        import logging, os, warnings
        import numpy as np
        import torch
        from kipoi import writers
        import kipoi.cli.main as kipoi_cli
        loggers = {"": logging.getLogger()} | {name: logger for name, logger in logging.root.manager.loggerDict.items()
                                              if isinstance(logger, logging.Logger)}
        return {
            "environ": dict(os.environ),
            "torch": [torch.get_num_threads(), torch.get_num_interop_threads(), str(torch.get_default_dtype()),
                      torch.are_deterministic_algorithms_enabled(), torch.is_grad_enabled(),
                      torch.get_float32_matmul_precision(), torch.backends.mkldnn.enabled],
            "warnings": [repr(f) for f in warnings.filters],
            "handlers": {name: [repr(h) for h in logger.handlers] + [logger.disabled, logger.level]
                         for name, logger in loggers.items() if logger.handlers or logger.disabled},
            "kipoi": [repr(writers.TsvBatchWriter), repr(writers.HDF5BatchWriter),
                      sorted((k, repr(v)) for k, v in writers.FILE_SUFFIX_MAP.items()),
                      repr(kipoi_cli.compare_numpy_dict), hasattr(np, "string_"), hasattr(np, "unicode_")],
        }
"""
def third_party_modules() -> list[str]:
    """Every module our two packages import from other packages (full dotted names, `from X import Y` as X and
    X.Y): imported before the first snapshot, so their own import-time effects (filters pandas or transformers add,
    a NullHandler of boto3) are not taken for ours."""
    names = set()
    for path in sorted(LIBRARY.rglob("*.py")) + sorted(PLUGIN.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    ours = ("genalm_models", "kipoi_genalm", "bench", "__future__")
    return sorted(name for name in names if name.split(".")[0] not in ours)


PRE_IMPORT = """
    import importlib
    for name in NAMES:
        try:
            importlib.import_module(name)
        except ImportError:   # `from X import Y` with Y not a module: as that statement does (lazy modules load);
            parent, _, attribute = name.rpartition(".")   # optional packages (tensorboard) may be missing
            try:
                getattr(importlib.import_module(parent), attribute, None)
            except ImportError:
                pass
"""


def test_importing_the_packages_changes_nothing_in_the_process(tmp_path):
    names = module_names(LIBRARY, "genalm_models") + module_names(PLUGIN, "kipoi_genalm")
    result = run_python([STATE, f"NAMES = {third_party_modules()!r}", PRE_IMPORT, f"""
    import json
    before = state()
    import genalm_models, kipoi_genalm
    packages_only = state()
    for name in {names!r}:
        importlib.import_module(name)
    after = state()
    print(json.dumps({{"packages": packages_only == before, "all": after == before,
                      "diff": {{key: [before[key], after[key]] for key in before if before[key] != after[key]}}}}))
    """], tmp_path)
    assert result["diff"] == {}
    assert result["packages"] and result["all"]


def test_the_state_snapshot_sees_what_the_entry_points_change(tmp_path):
    """The comparison above can fail: the entry points' own changes show up in the same snapshot."""
    result = run_python([STATE, f"NAMES = {third_party_modules()!r}", PRE_IMPORT, """
    import json
    before = state()
    from kipoi_genalm import kipoi_compat
    from genalm_models.process_settings import apply_process_settings
    kipoi_compat.apply()
    apply_process_settings("test")
    after = state()
    print(json.dumps(sorted(key for key in before if before[key] != after[key])))
    """], tmp_path)
    assert result == ["environ", "handlers", "kipoi"]


# ---- (c) ---------------------------------------------------------------------------------------------------------
CAPTURE = """
    import json, logging
    records = []
    class Capture(logging.Handler):
        def emit(self, record):
            records.append([record.name, record.levelname, record.getMessage()])
    for name in ("kipoi_genalm", "genalm_models"):
        logging.getLogger(name).addHandler(Capture())
        logging.getLogger(name).setLevel(logging.DEBUG)
"""


def test_kipoi_compat_is_applied_once_by_the_kipoi_entry_points(tmp_path):
    result = run_python([CAPTURE, f"""
    import os
    import numpy as np
    from kipoi import writers
    original = writers.TsvBatchWriter
    from kipoi_genalm import dataloaders, kipoi_compat, kipoi_model  # importing applies nothing
    imported = [writers.TsvBatchWriter is original, os.environ.get("THP_MEM_ALLOC_ENABLE")]
    model = kipoi_model.GenaLMModel(model_dir={str(BUNDLED)!r}, device="cpu")   # the Kipoi model load
    loaded = [writers.TsvBatchWriter is original, os.environ.get("THP_MEM_ALLOC_ENABLE")]
    dataloaders.IntervalSeqDl({str(BUNDLED / "example.bed")!r}, {str(BUNDLED / "example.fa.gz")!r},
                              sequence_length=300, anchor="tss", upstream=249)
    kipoi_compat.apply()
    print(json.dumps({{"imported": imported, "loaded": loaded, "records": records,
                      "subclass": issubclass(writers.TsvBatchWriter, original)}}))
    """], tmp_path)
    assert result["imported"] == [True, None]
    assert result["loaded"] == [False, "1"] and result["subclass"]
    patched = [r for r in result["records"] if r[0] == "kipoi_genalm.kipoi_compat"]
    assert len(patched) == 1 and patched[0][1] == "DEBUG" and "kipoi 0.8.6 patched" in patched[0][2]
    settings = [r for r in result["records"] if r[0] in ("genalm_models.process_settings", "genalm_models.inference")]
    assert len(settings) == 3 and all("kipoi model load" in r[2] for r in settings), settings
    assert not [r for r in result["records"] if r[1] == "WARNING"]


def test_kipoi_compat_warns_once_for_another_kipoi_version(tmp_path):
    result = run_python([CAPTURE, """
    from kipoi_genalm import kipoi_compat
    kipoi_compat.KIPOI_VERSION = "0.8.5"   # as if the installed kipoi were not the one the patches were written for
    for _ in range(3):
        kipoi_compat.apply()
    print(json.dumps([r for r in records if r[1] == "WARNING"]))
    """], tmp_path)
    assert len(result) == 1
    assert "kipoi 0.8.6 is installed" in result[0][2] and "written for kipoi 0.8.5" in result[0][2]
    assert "install kipoi==0.8.5" in result[0][2]


def test_process_settings_once_and_the_users_choice_kept(tmp_path):
    code = [CAPTURE, """
    import os
    from genalm_models.process_settings import apply_process_settings
    first = apply_process_settings("first caller")
    second = apply_process_settings("second caller")
    print(json.dumps({"first": first, "second": second, "records": records,
                      "env": [os.environ.get(name) for name in ("THP_MEM_ALLOC_ENABLE", "LRU_CACHE_CAPACITY",
                                                                "ONEDNN_PRIMITIVE_CACHE_CAPACITY")]}))
    """]
    result = run_python(code, tmp_path)
    assert result["env"] == ["1", "128", "128"]
    assert result["first"] == result["second"] == {"huge_pages": True, "keep_freed_memory": True,
                                                   "bounded_kernel_caches": True}
    assert len(result["records"]) == 3 and all("first caller" in r[2] for r in result["records"])
    assert "THP_MEM_ALLOC_ENABLE=1, set by first caller" in result["records"][0][2]
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY=128, LRU_CACHE_CAPACITY=128" in result["records"][1][2]

    user = run_python(code, tmp_path, env={"THP_MEM_ALLOC_ENABLE": "0", "MALLOC_MMAP_THRESHOLD_": "131072",
                                           "LRU_CACHE_CAPACITY": "4096", "DNNL_PRIMITIVE_CACHE_CAPACITY": "64"})
    assert user["env"] == ["0", "4096", None]   # oneDNN's older name counts as the user's value
    assert user["first"] == {"huge_pages": False, "keep_freed_memory": False, "bounded_kernel_caches": False}
    assert "as the user set it" in user["records"][0][2] and "the user set MALLOC" in user["records"][2][2]
    assert "DNNL_PRIMITIVE_CACHE_CAPACITY=64 as the user set it, LRU_CACHE_CAPACITY=4096 as the user set it" in \
        user["records"][1][2]


def test_the_clis_apply_the_process_settings(tmp_path):
    """`python -m genalm_models.train` and `genalm-kipoi` set huge pages at start, `genalm-kipoi` the kernel-cache
    bound too (seen by their subcommands)."""
    from genalm_models.train import __main__ as train_cli
    from kipoi_genalm import cli

    seen = {}
    for name, module, argv in (("train", train_cli, ["tokenizer", "--fasta", str(tmp_path / "none.fa"),
                                                      "--out", str(tmp_path / "tok")]),
                               ("kipoi", cli, ["check-fasta", "GENA-LM/promoter_300", str(tmp_path / "none.fa")])):
        code = f"""
        import json, os, sys
        from {module.__name__} import main
        try:
            main({argv!r})
        except SystemExit:
            pass
        print(json.dumps([os.environ.get("THP_MEM_ALLOC_ENABLE"), os.environ.get("LRU_CACHE_CAPACITY")]))
        """
        seen[name] = run_python([code], tmp_path)
    assert seen == {"train": ["1", None], "kipoi": ["1", "128"]}   # the cache bound: inference only


# ---- the Kipoi-free export ---------------------------------------------------------------------------------------
def test_kipoi_free_export_is_the_kipoi_folder_without_its_kipoi_files(tiny_zoo, tmp_path, chr20_fasta):
    from genalm_models.export import ExportError, export_model, registered_finishers
    from kipoi_genalm.zoo_export import add_kipoi_files, export_kipoi_model

    options = dict(fasta=str(chr20_fasta), sequence_length=300, n_examples=2, version="v1")
    plain = export_model(tiny_zoo["sources"]["mlm"], tmp_path / "plain" / "mlm", "GENA-LM/mlm", **options)
    kipoi = export_kipoi_model(tiny_zoo["sources"]["mlm"], tmp_path / "kipoi" / "mlm", "GENA-LM/mlm", **options)
    files = {path.relative_to(kipoi) for path in kipoi.rglob("*") if path.is_file()}
    plain_files = {path.relative_to(plain) for path in plain.rglob("*") if path.is_file()}
    assert files - plain_files == {Path("model.yaml"), Path("downloaded/model_files/test.expect.h5")}
    assert plain_files < files
    for name in sorted(plain_files - {Path("genalm.json")}):
        assert (plain / name).read_bytes() == (kipoi / name).read_bytes(), name
    plain_info, kipoi_info = (json.loads((folder / "genalm.json").read_text()) for folder in (plain, kipoi))
    plain_info.pop("exported_at"), kipoi_info.pop("exported_at")
    assert plain_info["source"] == kipoi_info["source"] and plain_info == kipoi_info

    assert registered_finishers() == [add_kipoi_files]   # the entry point the `train export` CLI loads (setup.py)
    with pytest.raises(ExportError, match="check_with_kipoi needs the Kipoi finisher"):
        export_model(tiny_zoo["sources"]["mlm"], tmp_path / "x", "GENA-LM/mlm", check_with_kipoi=True, **options)
    assert not (tmp_path / "x").exists()
