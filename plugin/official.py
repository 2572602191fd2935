"""The published GENA-LM models as Kipoi models: official names -> hub repository, revision, window, outputs.

Sources: the official repository's README_previous_generation.md (backbones and the fine-tuned branches with their
published scores), its upload script `update_model_code_on_hf.sh` (the species backbones) and its fine-tuning code
(`downstream_tasks/promoter_prediction/dataset.py`, `downstream_tasks/SpliceAI/SpliceAIDataset.py`,
`run_spliceai_finetuning.py`): the input windows, label order and output transforms below follow that code.

Each model gets a Kipoi name from its official name: a backbone `AIRI-Institute/gena-lm-bert-base-t2t` is
`GENA-LM/bert-base-t2t`; its fine-tuned branch `promoters_300_run_1` is `GENA-LM/bert-base-t2t/promoters_300`.
Their folders (`zoo/GENA-LM/<backbone>[/<head>]`) hold model.yaml, genalm.json (with `source.type: hub`, the
repository and the branch), small example files and a card - no weights: `adapter.FolderModel` fetches the
revision into the Hugging Face cache on first use (`genalm_models.hub.fetch`) and runs it with our own modeling
code (never the hub's remote code). `write_folders` regenerates the folders from this table.

Not Kipoi models (refused with the reason when named): the block-sparse DeepSpeed models
(`gena-lm-bigbird-base-sparse`, `gena-lm-bigbird-base-sparse-t2t`: CUDA + DeepSpeed sparse kernels, not
implemented in torch here) and the `enformer` branch of bert-base-t2t (a custom `BertForEnformer` head).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import GROUP_DIR, GROUP_NAME
from .folder import WindowSpec

ORGANISATION = "AIRI-Institute"
CONFIGS = {  # the official configs (data/configs in the official repository) each backbone was trained with
    "base": ("GENA-LM BERT-base: 12 layers, hidden 768, 12 heads, 512 tokens (~3.3 kb), pre-layer-norm, "
             "110 M parameters"),
    "base-lastln": ("GENA-LM BERT-base: 12 layers, hidden 768, 12 heads, 512 tokens (~3.3 kb), pre-layer-norm "
                    "with a final layer norm, 110 M parameters"),
    "large": ("GENA-LM BERT-large: 24 layers, hidden 1024, 16 heads, 512 tokens (~3.3 kb), pre-layer-norm with "
              "a final layer norm, 336 M parameters"),
    "bigbird-hf": ("Hugging Face BigBird: 12 layers, hidden 768, 4096 tokens (~36 kb), post-layer-norm, "
                   "block-sparse attention"),
}


@dataclass(frozen=True)
class OfficialModel:
    """One published checkpoint (a hub repository's branch) and how it is run."""

    repo: str                      # hub repository name under AIRI-Institute, e.g. gena-lm-bert-large-t2t
    revision: str                  # branch: main for backbones, e.g. promoters_2000_run_1 for heads
    kind: str                      # sequence | token | mlm (folder.KINDS)
    head: str                      # the GenaConfig head the weights belong to
    architecture: str              # key of CONFIGS
    task: str | None = None
    window: WindowSpec = WindowSpec()
    labels: tuple[str, ...] = ()
    output_indices: tuple[int, ...] = ()
    layout: str = "standard"       # token layout the head was trained with (genalm_models.official_layouts)
    config_defaults: dict[str, Any] = field(default_factory=dict)  # set by the official fine-tuning script
    published: str = ""            # the published score
    training_data: str = ""
    notes: str = ""

    @property
    def repo_id(self) -> str:
        return f"{ORGANISATION}/{self.repo}"

    @property
    def backbone(self) -> str:
        return self.repo[len("gena-lm-"):]

    @property
    def kipoi_name(self) -> str:
        if self.revision == "main":
            return f"{GROUP_NAME}/{self.backbone}"
        return f"{GROUP_NAME}/{self.backbone}/{self.revision.removesuffix('_run_1')}"

    @property
    def output_labels(self) -> list[str]:
        return [self.labels[i] for i in self.output_indices]

    @property
    def folder(self) -> Path:
        return GROUP_DIR / self.kipoi_name[len(GROUP_NAME) + 1:]


T2T_DATA = "T2T human genome (CHM13 v2) with 1000 Genomes SNP augmentation; chromosomes 7 and 10 held out"


def _backbone(repo: str, architecture: str, published: str, data: str) -> OfficialModel:
    return OfficialModel(repo=repo, revision="main", kind="mlm", head="mlm", architecture=architecture,
                         window=WindowSpec(), published=published, training_data=data)


def _promoters(repo: str, architecture: str, length: int, published: str) -> OfficialModel:
    upstream = {300: 249, 2000: 1000}[length]
    return OfficialModel(
        repo=repo, revision=f"promoters_{length}_run_1", kind="sequence", head="sequence_classification",
        architecture=architecture, task="promoter",
        window=WindowSpec(sequence_length=length, anchor="tss", upstream=upstream),
        labels=("not_promoter", "promoter"), output_indices=(1,), config_defaults={"num_labels": 2},
        published=published,
        training_data=(f"EPDnew human promoters (hg38), {length} bp windows -{upstream}..+{length - upstream - 1} "
                       "around the TSS; one negative per promoter (20 pieces, 12 shuffled); 5 folds"),
        notes=("Input as in the official `EPDnewPromoterDataset`: `[CLS] tokens [SEP]`, strand-aware window "
               "(reverse complement on '-'). Output: softmax over the 2 classes, P(class 1 = promoter)."))


def _splice(repo: str, architecture: str, published: str) -> OfficialModel:
    return OfficialModel(
        repo=repo, revision="spliceai_run_1", kind="token", head="token_classification",
        architecture=architecture, task="splice",
        window=WindowSpec(sequence_length=5000, anchor="center", flank=5000),
        labels=("none", "acceptor", "donor"), output_indices=(1, 2), layout="spliceai",
        config_defaults={"num_labels": 3, "problem_type": "multi_label_classification"},
        published=published,
        training_data=("SpliceAI training data (GENCODE canonical transcripts, 15 kb windows: 5 kb labelled + "
                       "5 kb context each side; classes 0 none, 1 acceptor, 2 donor)"),
        notes=("Layout of the official `SpliceAIDataset`, followed as the weights were trained: the 5 kb target "
               "is tokenized on its own and, being longer than 508 tokens, is cut to its first 508 tokens; the "
               "context is then not used at all (`[CLS] [SEP] target[:508] [SEP] [SEP]`). So only the first "
               "~3.3 kb of the 5 kb region get predictions; the rest are NaN. Outputs: sigmoid per class "
               "(multi-label, as trained with BCE), acceptor and donor, each token's value on every base it "
               "covers."))


OFFICIAL_MODELS: tuple[OfficialModel, ...] = (
    _backbone("gena-lm-bert-base", "base", "MLM only (first generation; T2T split v1, other tokenizer)",
              "T2T human genome, split v1; chromosomes 22 and Y held out"),
    _backbone("gena-lm-bert-base-t2t", "base", "MLM only", T2T_DATA),
    _backbone("gena-lm-bert-base-lastln-t2t", "base-lastln", "MLM only", T2T_DATA),
    _backbone("gena-lm-bert-base-t2t-multi", "base", "MLM only", T2T_DATA + ", plus multispecies genomes"),
    _backbone("gena-lm-bert-large-t2t", "large", "MLM only", T2T_DATA),
    _backbone("gena-lm-bert-base-fly", "base", "MLM only", "Drosophila genomes"),
    _backbone("gena-lm-bert-base-yeast", "base", "MLM only", "yeast genomes"),
    _backbone("gena-lm-bert-base-athaliana", "base", "MLM only", "Arabidopsis thaliana genomes"),
    _backbone("gena-lm-bigbird-base-t2t", "bigbird-hf", "MLM only", T2T_DATA),
    _promoters("gena-lm-bert-base-t2t", "base", 300, "F1 74.56 +/- 0.36"),
    _promoters("gena-lm-bert-large-t2t", "large", 300, "F1 76.44 +/- 0.16"),
    _promoters("gena-lm-bert-large-t2t", "large", 2000, "F1 93.70 +/- 0.44"),
    _splice("gena-lm-bert-base-t2t", "base", "PR-AUC 92.63 +/- 0.09 (token level, mean of acceptor and donor)"),
    _splice("gena-lm-bert-large-t2t", "large", "PR-AUC 93.59 +/- 0.11 (token level, mean of acceptor and donor)"),
)

# Published, but not runnable here: named so that a user gets the reason, not "no such model".
REFUSED = {
    "gena-lm-bigbird-base-sparse": "block-sparse attention through DeepSpeed sparse kernels (CUDA, fp16 only); "
                                   "not implemented in torch here: use the official code with DeepSpeed",
    "gena-lm-bigbird-base-sparse-t2t": "block-sparse attention through DeepSpeed sparse kernels (CUDA, fp16 "
                                       "only); not implemented in torch here: use the official code with "
                                       "DeepSpeed",
    "gena-lm-bert-base-t2t@enformer": "a custom BertForEnformer head (Enformer bins); not implemented here",
}


class UnknownOfficialModel(ValueError):
    """A name that is no official GENA-LM model, or one published but not runnable here (with the reason)."""


def find(name: str) -> OfficialModel:
    """An official model by Kipoi name (`GENA-LM/bert-large-t2t/promoters_2000`), hub id
    (`AIRI-Institute/gena-lm-bert-large-t2t@promoters_2000_run_1`, `@main` optional) or official name."""
    wanted = name.strip()
    for model in OFFICIAL_MODELS:
        hub_names = {f"{model.repo_id}@{model.revision}", f"{model.repo}@{model.revision}"}
        if model.revision == "main":
            hub_names |= {model.repo_id, model.repo, model.backbone}
        if wanted in hub_names or wanted == model.kipoi_name:
            return model
    bare = wanted.split("/", 1)[-1] if wanted.startswith(ORGANISATION + "/") else wanted
    for refused, reason in REFUSED.items():
        if bare == refused or f"gena-lm-{bare}" == refused:
            raise UnknownOfficialModel(f"{name}: published by AIRI but not runnable here: {reason}")
    known = ", ".join(m.kipoi_name for m in OFFICIAL_MODELS)
    raise UnknownOfficialModel(f"{name}: not an official GENA-LM model (known: {known})")


# ---------------------------------------------------------------------------------------------------------------
# The Kipoi folders
# ---------------------------------------------------------------------------------------------------------------
def folder_info(model: OfficialModel):
    from .folder import FolderInfo

    return FolderInfo(
        name=model.kipoi_name, version=model.revision, kind=model.kind, head=model.head, window=model.window,
        labels=list(model.labels), output_labels=model.output_labels, output_indices=list(model.output_indices),
        weights_sha256="", weights_dtype="float32", task=model.task, rmt=False, reference_name=None,
        reference_contigs={}, source={"type": "hub", "repo_id": model.repo_id, "revision": model.revision},
        input_layout=model.layout, config_defaults=dict(model.config_defaults),
        exporter={"genalm-models": "official catalog (kipoi_genalm.official)"}).validate()


def _example_source(model: OfficialModel) -> Path:
    """Bundled example files whose intervals suit the model: TSSs for promoters, splice sites, genomic windows."""
    return GROUP_DIR / {"promoter": "promoter", "splice": "splice"}.get(model.task or "", "mlm")


def _positions(model: OfficialModel) -> int:
    return 4096 if model.architecture == "bigbird-hf" else 512


def card(model: OfficialModel) -> str:
    from genalm_models.export import TSS_INPUT_NOTE

    window = model.window.describe()
    outputs = ", ".join(model.output_labels) or "embeddings (pooled, per token)"
    lines = [
        f"# {model.kipoi_name}",
        "",
        f"The published GENA-LM model `{model.repo_id}`, revision `{model.revision}`, run through Kipoi with "
        + ("transformers' own BigBird classes (a stock Hugging Face BigBird) under this package's heads and "
           "predict path" if model.architecture == "bigbird-hf" else "this package's own GENA-LM implementation")
        + " (no remote code). The weights are fetched from the Hugging Face hub "
        "on first use into the Hugging Face cache (`genalm-kipoi download "
        f"{model.kipoi_name}` does it ahead of time); afterwards everything works offline (`HF_HUB_OFFLINE=1`).",
        "",
        "| | |", "|---|---|",
        f"| architecture | {CONFIGS[model.architecture]} |",
        f"| official repository | https://huggingface.co/{model.repo_id} (branch `{model.revision}`) |",
        f"| task | {model.task or 'masked language model (backbone)'} |",
        f"| training data | {model.training_data} |",
        f"| input | {window}" + (f". {TSS_INPUT_NOTE}" if model.window.anchor == "tss" else "") + " |",
        f"| outputs | {outputs} |",
        f"| published | {model.published} (official README; averaged over runs, this checkpoint may differ) |",
        "",
    ]
    if model.notes:
        lines += ["## How the inputs are built", "", model.notes, ""]
    if model.kind == "mlm":
        lines += ["## Use", "",
                  "Through Kipoi the backbone returns embeddings; `genalm-kipoi score-variants` gives zero-shot "
                  f"masked-LM scores with it. It takes at most {_positions(model) - 2} tokens "
                  f"(~{(_positions(model) - 2) * 6.4 / 1000:.1f} kb at ~6.4 bp per token) per input.", ""]
    if model.kind == "sequence":
        config = {300: "promoter_300_genomic", 2000: "promoter_2k_genomic"}.get(model.window.sequence_length)
        lines += ["## Stability", "",
                  "How much P moves when the window moves by 1-50 bp and under single-base changes across the "
                  "window (`genalm_models/stability.py`). Not measured for this folder here: the "
                  "published weights come from the hub, and the machine that built this folder had no network. "
                  "With the weights in the Hugging Face cache it runs offline on the held-out chr20 windows: "
                  f"`python -m genalm_models.train evaluate --model hf://{model.repo_id}@{model.revision} "
                  f"--config recipes/zoo/{config or 'promoter_2k_genomic'}.yaml --split test --stability` "
                  "(GRCh37 chr20 from `../shared/data`; any task config with the same window works).", ""]
    lines += ["## Provenance", "",
              "Every output's `<output>.provenance.json` records the repository, the branch and the commit it "
              "resolved to, and the sha256 of the weights file (the hub's own checksum of the blob).",
              "", "Citation: Fishman V. et al. GENA-LM. Nucleic Acids Research 53(2), gkae1310 (2025).", ""]
    return "\n".join(lines)


def write_folder(model: OfficialModel, out: Path | None = None) -> Path:
    """Write the Kipoi folder of one official model (model.yaml, genalm.json, examples, README.md), atomically."""
    import os
    import secrets

    from genalm_models.config import GenaConfig
    from genalm_models.export import Plan
    from genalm_models.io_utils import move_into_place, write_text_atomic

    from .folder import write_folder_info
    from .zoo_export import write_model_yaml

    out = Path(out or model.folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    building = out.parent / f".{out.name}.official-{os.getpid()}-{secrets.token_hex(3)}"
    building.mkdir()
    try:
        examples = _example_source(model)
        for name in ("example.bed", "example.fa.gz", "example.fa.gz.fai", "example.fa.gz.gzi"):
            shutil.copyfile(examples / name, building / name)
        info = folder_info(model)
        write_folder_info(building, info)
        hidden = 1024 if model.architecture == "large" else 768
        config = GenaConfig(hidden_size=hidden, num_hidden_layers=24 if hidden == 1024 else 12,
                            num_attention_heads=16 if hidden == 1024 else 12, intermediate_size=4 * hidden,
                            max_position_embeddings=_positions(model))
        plan = Plan(name=model.kipoi_name, version=model.revision, kind=model.kind, head=model.head,
                    task=model.task, window=model.window, labels=list(model.labels),
                    output_labels=model.output_labels, output_indices=list(model.output_indices),
                    fasta=examples / "example.fa.gz", reference_name=None, examples=[],
                    max_tokens=_positions(model) if model.kind == "mlm" else None,
                    architecture=CONFIGS[model.architecture],
                    description=(f"The published GENA-LM {model.backbone} "
                                 + (f"{model.task} head (branch {model.revision})" if model.task else "backbone")
                                 + f", weights fetched on first use from the Hugging Face hub ({model.repo_id}). "
                                 f"Published: {model.published}."),
                    trained_on=model.training_data, license="MIT")
        write_model_yaml(plan, info, config, building, expect_md5=None)
        write_text_atomic(building / "README.md", card(model))
        if out.exists():
            shutil.rmtree(out / "__pycache__", ignore_errors=True)
            for child in out.iterdir():  # keep nested head folders of a backbone
                if child.is_file():
                    child.unlink()
            for child in building.iterdir():
                move_into_place(child, out / child.name)
            building.rmdir()
        else:
            move_into_place(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return out


def write_folders() -> list[Path]:
    """(Re)write every official model's folder under the bundled GENA-LM group (backbones first)."""
    return [write_folder(model) for model in OFFICIAL_MODELS]


def download(names: list[str], cache: str | None = None) -> list[str]:
    """Fetch the named official models into the Hugging Face cache (for air-gapped clusters: run where the
    network is, then copy the cache). Returns one line per model: repository, revision, resolved commit."""
    from genalm_models.hub import fetch

    lines = []
    models = list(OFFICIAL_MODELS) if names == ["all"] else [find(n) for n in names]
    for model in models:
        got = fetch(model.repo_id, model.revision, cache=cache)  # HF_HUB_OFFLINE=1: only checks the cache
        lines.append(f"{model.kipoi_name}\t{model.repo_id}@{model.revision}\tcommit {got.commit}\t{got.folder}")
    return lines


def table() -> str:
    """The README table: official name -> Kipoi name, task, window, outputs, published metric."""
    rows = ["| official (hub repository @ branch) | Kipoi name | task | input window | outputs | published |",
            "|---|---|---|---|---|---|"]
    for m in OFFICIAL_MODELS:
        rows.append(f"| `{m.repo_id}@{m.revision}` | `{m.kipoi_name}` | {m.task or 'MLM backbone'} | "
                    f"{m.window.describe()} | {', '.join(m.output_labels) or 'embeddings; MLM variant scores'} | "
                    f"{m.published} |")
    for name, reason in REFUSED.items():
        rows.append(f"| `{ORGANISATION}/{name}` | (none) | | | | refused: {reason.split(';')[0]} |")
    return "\n".join(rows)


__all__ = ["OFFICIAL_MODELS", "OfficialModel", "REFUSED", "find", "write_folder", "write_folders", "download",
           "table", "folder_info", "UnknownOfficialModel"]
