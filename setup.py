"""genalm_models (GENA-LM library + training package) and kipoi_genalm (the Kipoi plugin, from plugin/)."""
import runpy
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
# the one list of requirements (also written into every exported Kipoi model.yaml), read without importing the package
requirements = runpy.run_path(str(here / "genalm_models" / "requirements.py"))
packages = [p for p in find_packages(include=["genalm_models", "genalm_models.*"])]
plugin_packages = ["kipoi_genalm"] + ["kipoi_genalm." + p for p in find_packages(where="plugin")]

setup(
    name="genalm-models",
    version="0.1.0",
    description="GENA-LM DNA language models for the Kipoi model zoo: inference, variant effects and retraining",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=requirements["PYTHON_REQUIRES"],
    packages=packages + plugin_packages,
    package_dir={"kipoi_genalm": "plugin"},
    include_package_data=True,
    package_data={"kipoi_genalm": ["zoo/**/*"], "genalm_models": ["py.typed"]},
    install_requires=requirements["INSTALL_REQUIRES"],
    # peft: tests/test_transformers_integration.py attaches LoRA adapters to our models
    # pyBigWig: `scan --bigwig` (kipoi_genalm.distributed); not in install_requires, which every model.yaml lists
    extras_require={"test": ["pytest>=7", "pytest-timeout", "pyarrow>=14", "peft>=0.10", "pyBigWig>=0.3"],
                    "tensorboard": ["tensorboard"], "bigwig": ["pyBigWig>=0.3"]},
    entry_points={"console_scripts": ["genalm-kipoi = kipoi_genalm.cli:main"],
                  # `python -m genalm_models.train export` runs these on the folder it builds (genalm_models.export)
                  "genalm_models.export_finishers": ["kipoi = kipoi_genalm.zoo_export:add_kipoi_files"]},
)
