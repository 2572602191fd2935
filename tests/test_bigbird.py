"""The published stock-HF BigBird (`AIRI-Institute/gena-lm-bigbird-base-t2t`) through our heads and pipeline, offline:
a tiny random BigBird with the official config keys (saved by transformers' `save_pretrained`, the official t2t
tokenizer beside it) laid out in a Hugging Face cache; its outputs through FolderModel / Predictor / the real
`genalm-kipoi` CLI equal transformers' own BigBird on `[CLS] tokens [SEP]` of each sequence alone, in both attention
modes (full for short inputs, block-sparse for long ones); incomplete checkpoints are refused."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hub_cache import OFFICIAL_TOKENIZER, put_in_hub_cache
from test_kipoi_plugin import genalm

from genalm_models.checkpoint import CheckpointError, load_model
from genalm_models.predict import Predictor, forward_content, max_content_tokens
from genalm_models.tokenizer import GenaTokenizer
from kipoi_genalm import official

import transformers

OFFICIAL_CONFIG = OFFICIAL_TOKENIZER.parent / "configs" / "hf_bigbird_L12-H768-A12-V32k-L4096.json"
pytestmark = pytest.mark.skipif(not OFFICIAL_CONFIG.is_file(), reason="../shared/data/gena_lm_official missing")

REPO = "AIRI-Institute/gena-lm-bigbird-base-t2t"
# Block-sparse from (5 + 2 * 2) * 8 = 72 tokens on: both attention modes within a few hundred bases.
# initializer_range 0.2: a random model whose outputs differ visibly between inputs and attention modes.
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, block_size=8,
            num_random_blocks=2, max_position_embeddings=512, initializer_range=0.2)
FULL_MAX = 72
ROOT = Path(__file__).resolve().parents[1]
VCF = ROOT / "tests" / "data" / "veff_test.vcf"


def write_bigbird(folder: Path, architecture: str = "BigBirdForPreTraining", drop: tuple[str, ...] = (),
                  seed: int = 0, **changes) -> Path:
    """A random stock-BigBird folder as the hub has it: official config keys (tiny sizes), save_pretrained
    weights (`drop`: parameters left out), the official t2t tokenizer."""
    from safetensors.torch import load_file, save_file

    data = {**json.loads(OFFICIAL_CONFIG.read_text()), **TINY, **changes, "architectures": [architecture]}
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(transformers.BigBirdConfig.from_dict(data))
    with torch.no_grad():  # LayerNorms away from (1, 0) so that a mix-up of norms shows
        for name, param in model.named_parameters():
            if "layernorm" in name.lower():
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(folder)
    if drop:
        weights = folder / "model.safetensors"
        state = {k: v for k, v in load_file(str(weights)).items() if k not in drop}
        save_file(state, str(weights), metadata={"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(OFFICIAL_TOKENIZER / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bigbird_hf")
    folder = write_bigbird(root / "made" / "bigbird")
    snapshot = put_in_hub_cache(root / "hub", REPO, "main", folder)
    return {"cache": root / "hub", "snapshot": snapshot, "root": root,
            "env": {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(root / "hub"), "HF_HOME": str(root / "hf_home")}}


@pytest.fixture(scope="module")
def tokenizer() -> GenaTokenizer:
    return GenaTokenizer.from_pretrained(OFFICIAL_TOKENIZER)


@pytest.fixture(scope="module")
def sequences(chr20_genome) -> list[str]:
    """Real chr20 DNA: lengths giving inputs below and above the block-sparse threshold, in one batch."""
    chrom = chr20_genome.resolve("chr20")
    return [chr20_genome.fetch(chrom, start, start + length).upper()
            for start, length in ((300_000, 150), (410_000, 2400), (520_000, 900), (630_000, 300))]


def alone(reference, ids: list[int]) -> torch.Tensor:
    """transformers' own output for one `[CLS] tokens [SEP]` input, the model in its configured attention type
    (transformers would otherwise stay in full attention after a short input)."""
    base = reference if isinstance(reference, transformers.BigBirdModel) else reference.bert
    base.set_attention_type(reference.config.attention_type)
    with torch.no_grad():
        return reference(torch.tensor([ids]))


def test_official_config_reads_as_a_4096_position_model():
    from genalm_models.bigbird import gena_config, hf_config, is_bigbird

    data = json.loads(OFFICIAL_CONFIG.read_text())
    assert is_bigbird(data) and is_bigbird(OFFICIAL_CONFIG.parent / "missing") is False
    view = gena_config(hf_config(data))
    assert (view.max_position_embeddings, view.hidden_size, view.num_hidden_layers) == (4096, 768, 12)
    assert view.segment_size == 4094 and not view.pre_layer_norm and view.hidden_act == "gelu_new"
    assert view.extra["attention_type"] == "block_sparse" and view.extra["block_size"] == 64
    assert view.resolved_problem_type("mlm") == "single_label_classification"
    model = official.find(REPO)
    assert (model.kipoi_name, model.kind, model.architecture) == ("GENA-LM/bigbird-base-t2t", "mlm", "bigbird-hf")
    assert official.find("GENA-LM/bigbird-base-t2t") is model and REPO.split("/")[1] not in official.REFUSED


def test_folder_model_embeddings_equal_transformers_bigbird(hub, monkeypatch, tokenizer, sequences):
    from kipoi_genalm.adapter import FolderModel

    for key, value in hub["env"].items():
        monkeypatch.setenv(key, value)
    model = FolderModel(official.find("GENA-LM/bigbird-base-t2t").folder)
    assert type(model.model).__name__ == "HFBigBird" and max_content_tokens(model.model) == 510
    out = model.predict(sequences)  # one batch: short and long sequences together
    reference = transformers.BigBirdModel.from_pretrained(str(hub["snapshot"]), add_pooling_layer=False).eval()
    counts = []
    for row, sequence in enumerate(sequences):
        ids = tokenizer.encode(sequence)
        n = len(ids) - 2
        counts.append(len(ids))
        expected = alone(reference, ids).last_hidden_state[0, 1:-1].numpy()
        assert out["n_tokens"][row] == n
        np.testing.assert_allclose(out["token_embeddings"][row, :n], expected, atol=1e-5, rtol=0)
        np.testing.assert_allclose(out["pooled"][row], expected.mean(axis=0), atol=1e-5, rtol=0)
        assert np.isnan(out["token_embeddings"][row, n:]).all()
    assert min(counts) <= FULL_MAX < max(counts), counts  # both attention modes were exercised
    # block-sparse really differs from full attention on a long input: the comparison above is not vacuous
    long = tokenizer.encode(sequences[int(np.argmax(counts))])
    reference.set_attention_type("original_full")
    with torch.no_grad():
        full = reference(torch.tensor([long])).last_hidden_state[0, 1:-1].numpy()
    assert np.abs(full - alone(reference, long).last_hidden_state[0, 1:-1].numpy()).max() > 1e-3


def test_mlm_scores_equal_transformers_and_full_attention_is_said_once(hub, tokenizer, sequences, caplog, capfd):
    model, report = load_model(hub["snapshot"], head="mlm")
    assert type(model).__name__ == "HFBigBird" and model.head_name == "mlm"
    assert report.unexpected == ["cls.seq_relationship.bias", "cls.seq_relationship.weight"]  # the NSP head
    reference = transformers.BigBirdForMaskedLM.from_pretrained(str(hub["snapshot"])).eval()
    content = [tokenizer.encode(s, add_special_tokens=False) for s in sequences[:2]]
    positions = [[0, 7, len(content[0]) - 1], [3, 150, len(content[1]) - 1]]
    with caplog.at_level(logging.WARNING, logger="genalm_models.bigbird"):
        predictor = Predictor(model, tokenizer, batch_size=1)  # one masked copy per batch
        scores = predictor.masked_token_log_probs(content, positions)
    for ids, wanted, got in zip(content, positions, scores):
        for position, value in zip(wanted, got):
            masked = list(ids)
            masked[position] = tokenizer.mask_id
            logits = alone(reference, [tokenizer.cls_id, *masked, tokenizer.sep_id]).logits[0, position + 1]
            assert value == pytest.approx(torch.log_softmax(logits, -1)[ids[position]].item(), abs=1e-5)
    said = [r for r in caplog.records if "run with full attention" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert "is not possible" not in capfd.readouterr().err  # transformers' own per-call warning never fires
    # bf16 (a bf16 copy of the weights: transformers' block-sparse attention fails under autocast) stays close
    bf16 = Predictor(model, tokenizer, precision="bf16").masked_token_log_probs(content, positions)
    for a, b in zip(scores, bf16):
        np.testing.assert_allclose(b, a, atol=0.15)
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is left in fp32


@pytest.mark.parametrize("architecture,head", [("BigBirdForSequenceClassification", "sequence_classification"),
                                               ("BigBirdForTokenClassification", "token_classification")])
def test_classification_heads_equal_transformers(tmp_path, tokenizer, sequences, architecture, head):
    folder = write_bigbird(tmp_path / head, architecture, seed=5, num_labels=3)
    model, _ = load_model(folder, strict=True)  # the head from config.json's architectures
    assert model.head_name == head
    reference = getattr(transformers, architecture).from_pretrained(str(folder)).eval()
    predictor = Predictor(model, tokenizer)
    got = predictor.predict(sequences, level="token")
    for sequence, value in zip(sequences, got):
        logits = alone(reference, tokenizer.encode(sequence)).logits[0]
        if head == "sequence_classification":
            np.testing.assert_allclose(value, torch.softmax(logits, -1).numpy(), atol=1e-5)
        else:
            np.testing.assert_allclose(value.probs, torch.softmax(logits[1:-1], -1).numpy(), atol=1e-5)
    # the training forward: labels aligned with the content tokens, a loss to train on
    ids = torch.tensor([tokenizer.encode(sequences[0], add_special_tokens=False)])
    labels = torch.tensor([1]) if head == "sequence_classification" else torch.ones_like(ids)
    out = forward_content(model.train(), ids, torch.ones_like(ids), tokenizer.cls_id, tokenizer.sep_id,
                          tokenizer.pad_id, labels=labels)
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_missing_or_unused_weights_are_refused(hub, tmp_path, monkeypatch):
    layer = "bert.encoder.layer.1.output.dense.weight"
    incomplete = write_bigbird(tmp_path / "incomplete", drop=(layer,))
    with pytest.raises(CheckpointError, match=layer.replace(".", r"\.")):
        load_model(incomplete, head="embedding")
    # a new head is missing unless allowed, the pretraining heads unused unless allowed (fine-tuning)
    with pytest.raises(CheckpointError, match="classifier"):
        load_model(hub["snapshot"], head="token_classification", allow_unexpected=("cls.",))
    with pytest.raises(CheckpointError, match="cls.predictions"):
        load_model(hub["snapshot"], head="token_classification", allow_missing=("classifier.",))
    model, report = load_model(hub["snapshot"], head="token_classification", num_labels=3,
                               allow_missing=("classifier.",), allow_unexpected=("cls.",))
    assert report.missing == ["classifier.bias", "classifier.weight"] and model.config.num_labels == 3
    with pytest.raises(CheckpointError, match="seq_relationship"):
        load_model(hub["snapshot"], head="mlm", strict=True)
    # the official Kipoi folder on a cache whose snapshot lacks a weight
    from kipoi_genalm.adapter import FolderModel

    cache = tmp_path / "hub"
    put_in_hub_cache(cache, REPO, "main", incomplete)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(CheckpointError, match=layer.replace(".", r"\.")):
        FolderModel(official.find("GENA-LM/bigbird-base-t2t").folder)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A HOME where the real bundled group (with the official folders) is registered with Kipoi."""
    home = tmp_path_factory.mktemp("home_bigbird")
    genalm(["register"], home, home)
    return home


def test_score_variants_offline(hub, home, tmp_path, chr20_fasta):
    vcf = tmp_path / "few.vcf"
    lines = VCF.read_text().splitlines(keepends=True)
    vcf.write_text("".join([line for line in lines if line.startswith("#")]
                           + [line for line in lines if not line.startswith("#")][:5]))
    out = tmp_path / "scored.vcf"
    name = "GENA-LM/bigbird-base-t2t"
    genalm(["score-variants", name, "--vcf", str(vcf), "--fasta", str(chr20_fasta), "-o", str(out),
            "--seq-length", "600", "--no-progress"], home, tmp_path, **hub["env"])
    records = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert len(records) == 5
    values = [float(value) for record in records for field in record.split("\t")[7].split(";")
              if field.startswith(f"KV:kipoi:{name}:LLR=") for value in field.split("=", 1)[1].split(",")]
    assert values and all(np.isfinite(values)), records
    provenance = Path(f"{out}.provenance.json").read_text()
    assert REPO in provenance and hub["snapshot"].name in provenance
