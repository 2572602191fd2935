"""The pip requirements of genalm-models, in one place: setup.py's `install_requires`, and the `dependencies:` of
every Kipoi model folder this package writes (genalm_models.export; kipoi_genalm.official through it).

Plain data without imports: setup.py reads this file without importing the package (no torch at build time).
"""

INSTALL_REQUIRES = [
    # GPU machines carry their own torch build: accept a range (scripts/install.sh installs torch==2.13.0, the CPU
    # build where there is no NVIDIA GPU, when no torch is installed).
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
    "omegaconf>=2.4",  # typed configs (genalm_models/typed_config.py)
    "tqdm>=4.60",
    "matplotlib>=3.7",
    "h5py>=3.8",  # kipoi predict -o out.h5
    # The kipoi CLI as users have it; it imports pkg_resources (removed in setuptools 80.9+ / 82) and `six`.
    "kipoi==0.8.6",
    "kipoiseq==0.7.1",
    "setuptools<80.9",
    "six",
]

# The Python the package supports (setup.py python_requires; the model folders' conda dependency).
PYTHON_REQUIRES = ">=3.10"

# What a Kipoi model folder declares. The model's code is this package (kipoi_genalm), which is on no package
# index, so it is not listed (`kipoi env create` would fail on it); KIPOI_NOTE, written above the list, says how to
# install it into the environment those lists make.
KIPOI_DEPENDENCIES = {"conda": [f"python{PYTHON_REQUIRES}"], "pip": list(INSTALL_REQUIRES)}
KIPOI_NOTE = (
    "The model's code is the Python package genalm-models (kipoi_genalm), which is on no package index: install it "
    "from its wheel (`pip wheel --no-deps <repository>` builds genalm_models-<version>-py3-none-any.whl; then "
    "`pip install genalm_models-*.whl`) or from its repository (`pip install <repository>`). The lists below are "
    "what it needs; `bedtools` (apt or bioconda) is a program pybedtools calls."
)
