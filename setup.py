"""genalm_models (GENA-LM library + training package) and kipoi_genalm (the Kipoi plugin, from plugin/)."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
packages = [p for p in find_packages(include=["genalm_models", "genalm_models.*"])]
plugin_packages = ["kipoi_genalm"] + ["kipoi_genalm." + p for p in find_packages(where="plugin")]

setup(
    name="genalm-models",
    version="0.1.0",
    description="GENA-LM DNA language models for the Kipoi model zoo: inference, variant effects and retraining",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages + plugin_packages,
    package_dir={"kipoi_genalm": "plugin"},
    include_package_data=True,
    package_data={"kipoi_genalm": ["zoo/**/*"], "genalm_models": ["py.typed"]},
    install_requires=[
        # GPU machines carry their own torch build: accept a range, install torch==2.13.0 first on CPU machines.
        "torch>=2.2,<3",
        "transformers>=4.40",
        "tokenizers>=0.15",
        "safetensors>=0.4",
        "numpy>=1.24",
        "pandas>=1.5",
        "pyfaidx>=0.8",
        "biopython>=1.80",  # pyfaidx needs it for BGZF-compressed FASTA
        "pysam>=0.22",
        "pybedtools>=0.9",  # drives the `bedtools` program (Debian package `bedtools`)
        "scikit-learn>=1.3",
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "h5py>=3.8",  # kipoi predict -o out.h5
        # The kipoi CLI as users have it; it imports pkg_resources (removed in setuptools 80.9+ / 82) and `six`.
        "kipoi==0.8.6",
        "kipoiseq==0.7.1",
        "setuptools<80.9",
        "six",
    ],
    extras_require={"test": ["pytest>=7", "pytest-timeout"], "tensorboard": ["tensorboard"]},
    entry_points={"console_scripts": ["genalm-kipoi = kipoi_genalm.cli:main"]},
)
