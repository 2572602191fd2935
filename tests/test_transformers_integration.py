"""GENA-LM models as transformers citizens: config and heads load through the Auto classes (model type "gena-lm"),
from official-format folders and from a hub id in a local Hugging Face cache (offline), save_pretrained folders load
back bit-identically with the official config keys, transformers' own BertModel on a pre-LN folder is a different
network (the trap), and the users' tools work: Trainer fine-tunes, PEFT LoRA attaches, pipeline("fill-mask") runs.

Small random models on CPU (the bundled GENA-LM/promoter and GENA-LM/mlm folders are 4-layer, 192-wide RMT models).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from safetensors import safe_open
from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast)

from genalm_models.checkpoint import CheckpointError, load_model
from genalm_models.config import ConfigError, GenaConfig
from genalm_models.modeling_gena import (GenaForEmbedding, GenaForMaskedLM, GenaForSequenceClassification,
                                         GenaForTokenClassification)
from genalm_models.predict import Predictor
from genalm_models.rmt import RMT
from genalm_models.tokenizer import GenaTokenizer
from hub_cache import official_config, put_in_hub_cache, write_official_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "plugin" / "zoo" / "GENA-LM"
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def random_dna(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGT") for _ in range(n))


@pytest.fixture(scope="module")
def official_folder(tmp_path_factory) -> Path:
    """An official-format sequence-classification folder: model_type bert, pre_layer_norm, pytorch_model.bin."""
    return write_official_checkpoint(tmp_path_factory.mktemp("official") / "seq", "sequence_classification", seed=3,
                                     **TINY)


def tiny_config(**changes) -> GenaConfig:
    return GenaConfig(**{**dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0), **changes}).validate()


# ---- config ---------------------------------------------------------------------------------------------------------
def test_config_is_a_pretrained_config_of_its_own_type(official_folder):
    config = AutoConfig.from_pretrained(ZOO / "promoter")
    assert isinstance(config, GenaConfig) and isinstance(config, transformers.PretrainedConfig)
    assert config.model_type == "gena-lm" and config.rmt is not None and config.labels == ["not_promoter", "promoter"]
    # official files (model_type bert) read through our class; AutoConfig keeps giving transformers' BertConfig
    ours = GenaConfig.from_pretrained(official_folder)
    assert ours.pre_layer_norm is True and ours.extra["auto_map"]["AutoModel"] == "modeling_bert.BertModel"
    assert type(AutoConfig.from_pretrained(official_folder)) is transformers.BertConfig
    # transformers' override keywords work; a bad value is one ConfigError naming the file
    assert GenaConfig.from_pretrained(official_folder, num_labels=5).num_labels == 5
    bad = json.loads((official_folder / "config.json").read_text())
    with pytest.raises(ConfigError, match="x.json: hidden_act 'swish' is not supported"):
        GenaConfig.from_dict({**bad, "hidden_act": "swish"}, source="x.json")


# ---- Auto classes on the bundled (exported) folders = our predict path ----------------------------------------------
def test_auto_classes_on_bundled_promoter_match_predict_path():
    folder = ZOO / "promoter"
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert isinstance(model, RMT) and isinstance(model, PreTrainedModel)
    assert isinstance(model.model, GenaForSequenceClassification)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    seqs = [random_dna(2000, 1), random_dna(2000, 2)[:1500]]
    ours = Predictor(*[load_model(folder)[0], GenaTokenizer.from_pretrained(folder)], device="cpu", optimize=False)
    expected = np.stack(ours.predict(seqs))
    batch = tokenizer(seqs, padding=True, return_tensors="pt")  # [CLS] ... [SEP], padded
    with torch.no_grad():
        logits = model(**batch).logits
    got = torch.softmax(logits, dim=-1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # content tokens without [CLS]/[SEP] (the layout our predict path uses) give the same
    content = tokenizer(seqs, padding=True, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        np.testing.assert_allclose(torch.softmax(model(**content).logits, -1).numpy(), expected, atol=1e-5)
        with pytest.raises(ValueError, match="start with \\[CLS\\] but do not all end with \\[SEP\\]"):
            model(input_ids=torch.tensor([[tokenizer.cls_token_id, 200, 300]]))


def test_auto_classes_on_bundled_mlm_match_predict_path():
    folder = ZOO / "mlm"
    model = AutoModelForMaskedLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert isinstance(model.model, GenaForMaskedLM)
    seq = random_dna(1200, 4)
    ids = tokenizer(seq, add_special_tokens=False)["input_ids"]
    assert ids == GenaTokenizer.from_pretrained(folder).encode(seq, add_special_tokens=False)
    positions = [3, 10, len(ids) - 2]
    ours = Predictor(load_model(folder)[0], GenaTokenizer.from_pretrained(folder), device="cpu", optimize=False)
    expected = ours.masked_log_probs([ids], [positions])[0]
    masked = torch.tensor([[tokenizer.cls_token_id] + ids + [tokenizer.sep_token_id]])
    for p in positions:
        masked[0, p + 1] = tokenizer.mask_token_id
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=masked).logits[0], dim=-1)
    got = np.array([log_probs[p + 1, ids[p]].item() for p in positions])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_auto_tokenizer_on_official_and_exported_folders(official_folder):
    seqs = ["ACGTTGCANNNNNNNNNNNNNNACGGATTACA", random_dna(700, 6)]
    for folder in (official_folder, ZOO / "promoter"):
        ours = GenaTokenizer.from_pretrained(folder)
        theirs = AutoTokenizer.from_pretrained(folder)
        assert isinstance(theirs, PreTrainedTokenizerFast)
        assert theirs(seqs)["input_ids"] == [ours.encode(s) for s in seqs]
        converted = ours.to_transformers(512)
        assert converted(seqs)["input_ids"] == theirs(seqs)["input_ids"] and converted.model_max_length == 512
        back = GenaTokenizer.from_transformers(theirs)
        assert back.encode_with_offsets(seqs[0].lower()) == ours.encode_with_offsets(seqs[0].lower())
        assert (back.mask_id, back.gap_id) == (ours.mask_id, ours.gap_id)


# ---- official folders and hub ids -----------------------------------------------------------------------------------
def forward(model, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def test_from_pretrained_official_folder_is_strict(official_folder, tmp_path):
    model = GenaForSequenceClassification.from_pretrained(official_folder)
    reference, _ = load_model(official_folder)
    ids = torch.tensor([[1, 200, 300, 400, 2]])
    assert torch.equal(forward(model, ids), forward(reference, ids))
    assert not model.training and model.config.pre_layer_norm
    # a missing parameter is an error, not transformers' warning; allowed on request
    incomplete = write_official_checkpoint(tmp_path / "incomplete", "sequence_classification",
                                           drop=("classifier.weight",), **TINY)
    with pytest.raises(CheckpointError, match="classifier.weight.*allow_missing"):
        GenaForSequenceClassification.from_pretrained(incomplete)
    assert GenaForSequenceClassification.from_pretrained(incomplete, allow_missing=("classifier.",)) is not None
    # a checkpoint parameter the head does not use: the token head has no use for the sequence classifier's
    # pooler (by design) but the MLM folder's prediction head is unused by a sequence head
    mlm = write_official_checkpoint(tmp_path / "mlm", "mlm", **TINY)
    with pytest.raises(CheckpointError, match="not in the checkpoint"):
        GenaForSequenceClassification.from_pretrained(mlm)
    with pytest.raises(CheckpointError, match="cls.predictions"):
        GenaForTokenClassification.from_pretrained(mlm, num_labels=3, allow_missing=("classifier.",))
    with pytest.raises(CheckpointError, match="absent: neither a model folder"):
        GenaForSequenceClassification.from_pretrained(tmp_path / "absent")
    with pytest.raises(TypeError, match="unsupported arguments device_map"):
        GenaForSequenceClassification.from_pretrained(official_folder, device_map="auto")


def test_from_pretrained_hub_id_from_local_cache(official_folder, tmp_path, monkeypatch):
    home = tmp_path / "hf_home"
    put_in_hub_cache(home / "hub", "AIRI-Institute/gena-lm-test-t2t", "main", official_folder)
    branch = write_official_checkpoint(tmp_path / "branch", "sequence_classification", seed=7, **TINY)
    put_in_hub_cache(home / "hub", "AIRI-Institute/gena-lm-test-t2t", "promoters_300_run_1", branch)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ids = torch.tensor([[1, 20, 30, 2]])
    main = GenaForSequenceClassification.from_pretrained("AIRI-Institute/gena-lm-test-t2t")
    assert torch.equal(forward(main, ids), forward(load_model(official_folder)[0], ids))
    run = GenaForSequenceClassification.from_pretrained("AIRI-Institute/gena-lm-test-t2t",
                                                        revision="promoters_300_run_1")
    assert torch.equal(forward(run, ids), forward(load_model(branch)[0], ids))
    assert not torch.equal(forward(run, ids), forward(main, ids))
    with pytest.raises(OSError, match="not in the Hugging Face cache"):
        GenaForSequenceClassification.from_pretrained("AIRI-Institute/gena-lm-test-t2t", revision="nope")


# ---- save_pretrained -------------------------------------------------------------------------------------------------
def test_save_pretrained_round_trip_keeps_official_keys(official_folder, tmp_path):
    model = GenaForSequenceClassification.from_pretrained(official_folder)
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    official = official_config("sequence_classification", **TINY)
    assert set(official) <= set(saved)
    assert {k: saved[k] for k in official if k != "model_type"} == {k: v for k, v in official.items()
                                                                    if k != "model_type"}
    assert saved["model_type"] == "gena-lm"
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["config.json", "model.safetensors"]
    # the official parameter names (the official code's own state_dict), less its position_ids buffer
    official_names = set(torch.load(official_folder / "pytorch_model.bin", weights_only=True))
    with safe_open(tmp_path / "saved" / "model.safetensors", "pt") as handle:
        assert set(handle.keys()) == official_names - {"bert.embeddings.position_ids"}
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved")
    assert type(again) is GenaForSequenceClassification
    before, after = model.state_dict(), again.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # the MLM head: its decoder tied to the word embeddings, stored once, tied again on loading
    mlm = GenaForMaskedLM(tiny_config())
    mlm.save_pretrained(tmp_path / "mlm")
    back = AutoModelForMaskedLM.from_pretrained(tmp_path / "mlm")
    assert back.cls.predictions.decoder.weight is back.bert.embeddings.word_embeddings.weight
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in mlm.state_dict().items())


def test_auto_model_is_the_backbone_and_token_head(tmp_path):
    token = GenaForTokenClassification(tiny_config(num_labels=3))
    token.save_pretrained(tmp_path / "token")
    assert type(AutoModelForTokenClassification.from_pretrained(tmp_path / "token")) is GenaForTokenClassification
    backbone = AutoModel.from_pretrained(tmp_path / "token")
    assert type(backbone) is GenaForEmbedding
    ids = torch.tensor([[1, 5, 6, 7, 2]])
    with torch.no_grad():
        assert torch.equal(backbone(input_ids=ids).hidden_states, token(input_ids=ids).hidden_states)


# ---- the trap: transformers' BertModel on a GENA-LM folder ------------------------------------------------------------
def test_transformers_bert_on_pre_layer_norm_folder_is_another_network(official_folder):
    ours = GenaForSequenceClassification.from_pretrained(official_folder)
    theirs = AutoModelForSequenceClassification.from_pretrained(official_folder)  # model_type bert, no remote code
    assert type(theirs) is transformers.BertForSequenceClassification  # "bert" is transformers' own, untouched
    ids = torch.tensor([[1, 200, 300, 400, 500, 2]])
    with torch.no_grad():
        a, b = ours(input_ids=ids).logits, theirs(input_ids=ids).logits
    assert (a - b).abs().max().item() > 1e-3  # pre_layer_norm ignored: its LayerNorms are re-initialised


# ---- users' tools ------------------------------------------------------------------------------------------------------
def toy_dataset(n: int, seed: int) -> list[dict]:
    """Sequences of 12 tokens; label 1: content tokens drawn from ids 11-35, label 0: from 36-63 (learnable in a
    few steps)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        low, high = (11, 36) if label else (36, 64)
        ids = [rng.randrange(low, high) for _ in range(10)]
        rows.append({"input_ids": torch.tensor([1] + ids + [2]), "attention_mask": torch.ones(12, dtype=torch.long),
                     "labels": torch.tensor(label)})
    return rows


def test_trainer_fine_tunes_a_head(tmp_path):
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    model = GenaForSequenceClassification(tiny_config())
    data = toy_dataset(64, 0)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, num_train_epochs=8,
                             learning_rate=1e-2, save_strategy="no", report_to=[], logging_steps=4, use_cpu=True,
                             disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < 0.5 * before, (before, after)
    trainer.save_model(str(tmp_path / "model"))
    back = GenaForSequenceClassification.from_pretrained(tmp_path / "model")
    ids = data[0]["input_ids"][None]
    assert torch.equal(forward(back, ids), forward(model.eval(), ids))


def test_peft_lora_attaches_to_query_and_value():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(GenaForSequenceClassification(tiny_config()),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable} == {"query", "value"}
    assert len(trainable) == 2 * 2 * 2  # 2 layers x (query, value) x (A, B)
    batch = toy_dataset(4, 1)
    out = model(input_ids=torch.stack([r["input_ids"] for r in batch]),
                attention_mask=torch.stack([r["attention_mask"] for r in batch]),
                labels=torch.stack([r["labels"] for r in batch]))
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(grads[name] is not None for name in trainable)
    assert all(grads[name].abs().sum() > 0 for name in trainable if "lora_B" in name)  # B starts at 0, A gets 0
    assert all(grads[name] is None for name in grads if name not in trainable)


def test_fill_mask_pipeline_on_bundled_mlm():
    fill = transformers.pipeline("fill-mask", model=str(ZOO / "mlm"), device="cpu")
    seq = random_dna(300, 5)
    results = fill(seq[:150] + "[MASK]" + seq[150:], top_k=3)
    assert len(results) == 3 and all(r["token_str"] and set(r["token_str"]) <= set("ACGTN") for r in results)
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"] > 0
