"""The GENA-LM encoder and heads: definitions, official configs and checkpoints, padding invariance."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genalm_models.checkpoint import CheckpointError, load_model, save_model
from genalm_models.config import ConfigError, GenaConfig
from genalm_models.modeling_gena import (GenaForMaskedLM, GenaForSequenceClassification, GenaForTokenClassification,
                                         GenaModel, build_model)

OFFICIAL_CONFIGS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gena_lm_official" / "configs"


def tiny_config(**changes) -> GenaConfig:
    base = dict(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=80,
                max_position_embeddings=96, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    base.update(changes)
    return GenaConfig(**base).validate()


def randomise_norms(model: torch.nn.Module) -> None:
    """LayerNorms start as identity; give them random affine parameters so their order matters in the checks."""
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)


def test_post_ln_equals_transformers_bert():
    import transformers
    cfg = tiny_config(pre_layer_norm=False, layer_norm_eps=1e-12, num_labels=3)
    ours = GenaForSequenceClassification(cfg).eval()
    randomise_norms(ours)
    hf_cfg = transformers.BertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings, layer_norm_eps=cfg.layer_norm_eps,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=cfg.pad_token_id, num_labels=3)
    hf = transformers.BertForSequenceClassification(hf_cfg).eval()
    missing, unexpected = hf.load_state_dict(ours.state_dict(), strict=False)
    assert not [k for k in missing if "position_ids" not in k], missing
    assert not unexpected
    ids = torch.randint(5, 64, (2, 40))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        out = ours(ids, mask)
    torch.testing.assert_close(out.hidden_states[0], ref.hidden_states[-1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.hidden_states[1, :30], ref.hidden_states[-1][1, :30], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-5, rtol=1e-5)


def test_mlm_head_equals_transformers_post_ln():
    import transformers
    cfg = tiny_config(pre_layer_norm=False)
    ours = GenaForMaskedLM(cfg).eval()
    randomise_norms(ours)
    hf_cfg = transformers.BertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, pad_token_id=cfg.pad_token_id)
    hf = transformers.BertForMaskedLM(hf_cfg).eval()
    hf.load_state_dict(ours.state_dict(), strict=False)
    ids = torch.randint(5, 64, (2, 25))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


def manual_pre_ln_forward(model: GenaModel, ids: torch.Tensor) -> torch.Tensor:
    """The published pre-LN definition written out with plain tensor ops."""
    cfg = model.config
    emb = model.embeddings
    t = ids.shape[1]
    h = emb.word_embeddings.weight[ids] + emb.position_embeddings.weight[:t] + emb.token_type_embeddings.weight[0]
    h = F.layer_norm(h, (cfg.hidden_size,), emb.LayerNorm.weight, emb.LayerNorm.bias, cfg.layer_norm_eps)
    nh, hd = cfg.num_attention_heads, cfg.head_dim
    for layer in model.encoder.layer:
        x = F.layer_norm(h, (cfg.hidden_size,), layer.pre_attention_ln.weight, layer.pre_attention_ln.bias,
                         cfg.layer_norm_eps)
        att = layer.attention.self
        q = (x @ att.query.weight.T + att.query.bias).view(1, t, nh, hd).transpose(1, 2)
        k = (x @ att.key.weight.T + att.key.bias).view(1, t, nh, hd).transpose(1, 2)
        v = (x @ att.value.weight.T + att.value.bias).view(1, t, nh, hd).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(1, t, cfg.hidden_size)
        h = h + ctx @ layer.attention.output.dense.weight.T + layer.attention.output.dense.bias
        x = F.layer_norm(h, (cfg.hidden_size,), layer.post_attention_ln.weight, layer.post_attention_ln.bias,
                         cfg.layer_norm_eps)
        ffn = F.gelu(x @ layer.intermediate.dense.weight.T + layer.intermediate.dense.bias)
        h = h + ffn @ layer.output.dense.weight.T + layer.output.dense.bias
    if cfg.use_last_layer_norm:
        h = F.layer_norm(h, (cfg.hidden_size,), model.encoder.last_layer_ln.weight, model.encoder.last_layer_ln.bias,
                         cfg.layer_norm_eps)
    return h


@pytest.mark.parametrize("last_layer_norm", [True, False])
def test_pre_ln_order_of_operations(last_layer_norm):
    cfg = tiny_config(pre_layer_norm=True, last_layer_norm=last_layer_norm, layer_norm_eps=1e-5)
    model = GenaForMaskedLM(cfg).eval()
    randomise_norms(model)
    ids = torch.randint(5, 64, (1, 33))
    with torch.no_grad():
        torch.testing.assert_close(model.bert(ids), manual_pre_ln_forward(model.bert, ids), atol=1e-5, rtol=1e-5)
    assert hasattr(model.bert.encoder, "last_layer_ln") == last_layer_norm
    names = set(model.state_dict())
    assert "bert.encoder.layer.0.pre_attention_ln.weight" in names
    assert "bert.encoder.layer.0.post_attention_ln.weight" in names
    assert not any("attention.output.LayerNorm" in n for n in names)


def test_last_layer_norm_defaults_to_pre_layer_norm():
    assert GenaConfig.from_dict({"pre_layer_norm": True}).use_last_layer_norm
    assert not GenaConfig.from_dict({"pre_layer_norm": False}).use_last_layer_norm
    assert not GenaConfig.from_dict({"pre_layer_norm": True, "last_layer_norm": False}).use_last_layer_norm
    # absent stays absent when written back
    assert "last_layer_norm" not in GenaConfig.from_dict({"pre_layer_norm": True}).to_dict()


def test_padding_invariance():
    cfg = tiny_config(num_labels=2)
    torch.manual_seed(0)
    for model in (GenaForSequenceClassification(cfg).eval(), GenaForTokenClassification(cfg).eval()):
        ids = torch.randint(5, 64, (1, 21))
        with torch.no_grad():
            alone = model(ids, torch.ones_like(ids))
            for pad in (1, 7, 60):
                padded = torch.cat([ids, torch.full((1, pad), cfg.pad_token_id)], dim=1)
                mask = torch.cat([torch.ones(1, 21, dtype=torch.long), torch.zeros(1, pad, dtype=torch.long)], 1)
                out = model(padded, mask)
                torch.testing.assert_close(out.hidden_states[:, :21], alone.hidden_states, atol=1e-5, rtol=1e-5)
                if isinstance(model, GenaForSequenceClassification):
                    torch.testing.assert_close(out.logits, alone.logits, atol=1e-5, rtol=1e-5)
            # changing a real token changes the output: the comparison above is not vacuous
            other = ids.clone()
            other[0, 5] = (other[0, 5] + 1 - 5) % 59 + 5
            assert not torch.allclose(model(other).hidden_states, alone.hidden_states, atol=1e-4)


@pytest.mark.skipif(not OFFICIAL_CONFIGS.is_dir(), reason="../shared/data/gena_lm_official is not beside the repo")
def test_every_official_config_loads_or_is_rejected_clearly():
    seen = 0
    for path in sorted(OFFICIAL_CONFIGS.glob("*.json")):
        data = json.loads(path.read_text())
        if "sparse_attention" in data or data.get("model_type") == "big_bird":
            with pytest.raises(ConfigError, match="sparse|BigBird"):
                GenaConfig.from_json(path)
            continue
        cfg = GenaConfig.from_json(path)
        seen += 1
        assert cfg.layer_norm_eps == data["layer_norm_eps"]
        assert cfg.use_last_layer_norm == data.get("last_layer_norm", data["pre_layer_norm"])
        # build at reduced depth (full size would take seconds of RAM per model): the layer count is the only change
        model = build_model(cfg.replace(num_hidden_layers=1), "mlm")
        assert model.bert.embeddings.word_embeddings.weight.shape == (cfg.vocab_size, cfg.hidden_size)
        assert hasattr(model.bert.encoder, "last_layer_ln") == cfg.use_last_layer_norm
        assert model.bert.encoder.layer[0].pre_attention_ln.eps == data["layer_norm_eps"]
    assert seen == 3


def official_state_dict(model: torch.nn.Module) -> dict:
    """What an official hub file holds: every name, tied copies included, plus the position_ids buffer."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["bert.embeddings.position_ids"] = torch.arange(model.config.max_position_embeddings)[None]
    return state


@pytest.mark.parametrize("head", ["mlm", "sequence_classification", "token_classification"])
def test_official_checkpoint_folder_round_trip(tmp_path, head):
    cfg = tiny_config(num_labels=2)
    model = build_model(cfg, head).eval()
    randomise_norms(model)
    official = tmp_path / "official"
    official.mkdir()
    data = cfg.to_dict()
    data["architectures"] = [{"mlm": "BertForMaskedLM", "sequence_classification": "BertForSequenceClassification",
                              "token_classification": "BertForTokenClassification"}[head]]
    (official / "config.json").write_text(json.dumps(data))
    torch.save(official_state_dict(model), official / "pytorch_model.bin")
    loaded, report = load_model(official)
    assert report.clean, str(report)
    assert type(loaded) is type(model)
    ids = torch.randint(5, 64, (2, 17))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids).hidden_states, model(ids).hidden_states)
    # and our safetensors export keeps the official names
    save_model(loaded, tmp_path / "ours")
    from safetensors.torch import load_file
    names = set(load_file(str(tmp_path / "ours" / "model.safetensors")))
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    again, report = load_model(tmp_path / "ours", strict=True)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(ids).hidden_states, model(ids).hidden_states)


def test_missing_and_unexpected_parameters_are_errors_unless_allowed(tmp_path):
    cfg = tiny_config()
    mlm = GenaForMaskedLM(cfg)
    save_model(mlm, tmp_path)
    # a pretrained MLM folder loaded for fine-tuning: the classifier and pooler are new, the MLM head is unused
    with pytest.raises(CheckpointError, match=rf"^{tmp_path}/model.safetensors: 4 parameter\(s\) of the "
                                              r"sequence_classification model are not in the checkpoint .*classifier"):
        load_model(tmp_path, head="sequence_classification")
    with pytest.raises(CheckpointError, match="not used by the sequence_classification model: cls.predictions"):
        load_model(tmp_path, head="sequence_classification", allow_missing=("classifier.", "bert.pooler."))
    model, report = load_model(tmp_path, head="sequence_classification", allow_missing=("classifier.", "bert.pooler."),
                               allow_unexpected=("cls.",))
    assert {"classifier.weight", "bert.pooler.dense.weight"} <= set(report.missing)
    assert "cls.predictions.transform.dense.weight" in report.unexpected
    model, report = load_model(tmp_path, head="sequence_classification", allow_missing=True, allow_unexpected=True)
    assert not report.clean
    with pytest.raises(CheckpointError, match="newly initialised"):
        load_model(tmp_path, head="sequence_classification", strict=True, allow_missing=True, allow_unexpected=True)
    # the embedding head reads the MLM folder's backbone: its unused MLM head is no error
    model, report = load_model(tmp_path, head="embedding")
    assert not report.missing and all(k.startswith("cls.predictions.") for k in report.unexpected)


def test_a_checkpoint_lacking_backbone_weights_is_an_error(tmp_path):
    from safetensors.torch import load_file, save_file

    model = GenaForSequenceClassification(tiny_config())
    save_model(model, tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    save_file({k: v for k, v in state.items() if ".layer.1." not in k}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: 16 parameter\(s\) .* randomly initialised: "
                                              r"bert.encoder.layer.1."):
        load_model(tmp_path)
    loaded, report = load_model(tmp_path, allow_missing=True)  # asked for explicitly: loads, and says so
    assert len(report.missing) == 16
    # checkpoint parameters the model does not have (another head, another config) are errors too
    save_file({**state, "bert.encoder.layer.9.output.dense.weight": torch.zeros(3)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="not used by the sequence_classification model: "
                                              "bert.encoder.layer.9.output.dense.weight"):
        load_model(tmp_path)
    load_model(tmp_path, allow_unexpected=("bert.encoder.layer.9.",))


class NotATensor:
    """An arbitrary object: unpickling it would run code from the file's author."""


def test_pickle_checkpoints_are_loaded_without_arbitrary_objects(tmp_path):
    cfg = tiny_config()
    cfg.save(tmp_path)
    torch.save({"bert.embeddings.word_embeddings.weight": NotATensor()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="safely"):
        load_model(tmp_path)


def test_shape_mismatch_is_an_error(tmp_path):
    save_model(GenaForMaskedLM(tiny_config()), tmp_path)
    cfg = tiny_config(hidden_size=48)
    with pytest.raises(CheckpointError, match="shape"):
        load_model(tmp_path, config=cfg)


def test_bad_configs_name_the_problem(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"hidden_size": 30, "num_attention_heads": 4}')
    with pytest.raises(ConfigError, match="not a multiple"):
        GenaConfig.from_json(bad)
    bad.write_text('{"hidden_size": 32,\n "num_attention_heads": }')
    with pytest.raises(ConfigError, match="line 2"):
        GenaConfig.from_json(bad)
    with pytest.raises(ConfigError, match="not found"):
        GenaConfig.from_json(tmp_path / "nope.json")


def test_fp16_storage_round_trip(tmp_path):
    model = GenaForSequenceClassification(tiny_config()).eval()
    save_model(model, tmp_path, dtype=torch.float16)
    loaded, report = load_model(tmp_path, strict=True)
    assert loaded.bert.embeddings.word_embeddings.weight.dtype == torch.float32
    ids = torch.randint(5, 64, (2, 17))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids).logits, model(ids).logits, atol=2e-3, rtol=2e-3)


def test_saving_the_same_weights_gives_the_same_bytes(tmp_path):
    """Exports record the weights' sha256: saving unchanged weights again must not change the file."""
    model = GenaForSequenceClassification(tiny_config()).eval()
    files = set()
    for i in range(8):  # metadata written in a random order would differ between some of these saves
        save_model(model, tmp_path / str(i), dtype=torch.float16)
        files.add((tmp_path / str(i) / "model.safetensors").read_bytes())
    assert len(files) == 1


def test_official_rmt_checkpoint_with_model_prefix_loads(tmp_path):
    """RMT checkpoints with only `model.*` keys: backbone under `model.`, vocab + m embedding rows, no rmt key in
    config.json. Loaded as an official RMT (official segment padding)."""
    from genalm_models.config import RMTConfig
    from genalm_models.rmt import RMT

    cfg = tiny_config(num_labels=2)
    rmt = RMT(GenaForSequenceClassification(cfg), RMTConfig(num_mem_tokens=5, segment_padding="official")).eval()
    data = cfg.to_dict()
    data["architectures"] = ["BertForSequenceClassification"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    torch.save({k: v.clone() for k, v in rmt.state_dict().items()}, tmp_path / "pytorch_model.bin")
    loaded, report = load_model(tmp_path)
    assert isinstance(loaded, RMT) and loaded.num_mem_tokens == 5 and loaded.rmt.segment_padding == "official"
    assert report.clean, str(report)
    ids = torch.randint(5, 64, (1, 150))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids).logits, rmt(ids).logits)


# ---- official RMT checkpoints (the official modeling_rmt.py wrapper's state_dict) -----------------------------------
def official_rmt_state(rmt) -> dict:
    """What the state_dict of the official RMT wrapper (modeling_rmt.RMTEncoderFor*) holds for the same weights: the
    wrapped model under `model.` (position_ids buffer included), the word embeddings a second time as
    `model.embeddings.weight` (extend_word_embeddings assigns the module to the model's `embeddings` attribute), and
    the buffers mem_token_ids, cls_token, sep_token."""
    state = {f"model.{k}": v for k, v in official_state_dict(rmt.model).items()}
    state["model.embeddings.weight"] = state["model.bert.embeddings.word_embeddings.weight"].clone()
    state["mem_token_ids"] = rmt.mem_token_ids.clone()
    state["cls_token"], state["sep_token"] = torch.tensor([rmt.cls_id]), torch.tensor([rmt.sep_id])
    return state


def write_official_rmt_folder(folder: Path, rmt, architectures=("BertForMaskedLM",), wrap=False, **config) -> Path:
    """config.json as the official configs have it (no rmt, no num_labels; architectures BertForMaskedLM as in
    data/configs/*.json), pytorch_model.bin holding the wrapper's state_dict (`wrap`: inside the official training
    scripts' checkpoint dict, {"model_state_dict": ..., "iteration": ...})."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in rmt.model.config.to_dict().items() if k not in ("num_labels", "id2label", "label2id")}
    data.update(architectures=list(architectures), **config)
    (folder / "config.json").write_text(json.dumps(data))
    state = official_rmt_state(rmt)
    torch.save({"model_state_dict": state, "iteration": 1000} if wrap else state, folder / "pytorch_model.bin")
    return folder


@pytest.mark.parametrize("wrap", [False, True])
def test_official_rmt_sequence_checkpoint_loads_as_rmt(tmp_path, wrap):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_rmt import official_rmt_sequence_logits

    from genalm_models.config import RMTConfig
    from genalm_models.rmt import RMT

    torch.manual_seed(0)
    cfg = tiny_config(num_labels=2, initializer_range=0.2)
    source = RMT(GenaForSequenceClassification(cfg), RMTConfig(num_mem_tokens=5, segment_padding="official")).eval()
    randomise_norms(source)
    folder = write_official_rmt_folder(tmp_path / "official", source, wrap=wrap)
    loaded, report = load_model(folder)
    assert report.clean, str(report)
    assert isinstance(loaded, RMT) and isinstance(loaded.model, GenaForSequenceClassification)
    assert loaded.num_mem_tokens == 5 and loaded.rmt.segment_padding == "official"
    assert {"mem_token_ids", "cls_token", "sep_token", "model.embeddings.weight"} <= set(report.ignored)
    # the memory tokens are the checkpoint's, not fresh rows
    torch.testing.assert_close(loaded.model.word_embeddings.weight[64:], source.model.word_embeddings.weight[64:])
    content = torch.randint(5, 64, (2, 150))
    content[1, 70:] = cfg.pad_token_id
    mask = (content != cfg.pad_token_id).long()
    as_official = torch.full((2, 152), cfg.pad_token_id)
    as_official[0] = torch.cat([torch.tensor([1]), content[0], torch.tensor([2])])
    as_official[1, :72] = torch.cat([torch.tensor([1]), content[1, :70], torch.tensor([2])])
    with torch.no_grad():
        ours = loaded.eval()(content, mask).logits
        torch.testing.assert_close(ours, official_rmt_sequence_logits(source, as_official), atol=1e-5, rtol=1e-5)
    # saved in our format and read back: still the official padding
    save_model(loaded, tmp_path / "ours")
    again, report = load_model(tmp_path / "ours", strict=True)
    assert again.rmt.segment_padding == "official"
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(content, mask).logits, ours)


@pytest.mark.parametrize("head", ["token_classification", "mlm"])
def test_official_rmt_token_and_mlm_checkpoints_load_as_rmt(tmp_path, head):
    from genalm_models.config import RMTConfig
    from genalm_models.rmt import RMT

    torch.manual_seed(0)
    cfg = tiny_config(num_labels=2, problem_type="multi_label_classification" if head != "mlm" else None)
    source = RMT(build_model(cfg, head), RMTConfig(num_mem_tokens=4)).eval()
    folder = write_official_rmt_folder(tmp_path / head, source, architectures=(), num_labels=2,
                                       **({"problem_type": "multi_label_classification"} if head != "mlm" else {}))
    loaded, report = load_model(folder)
    assert report.clean, str(report)
    assert isinstance(loaded, RMT) and type(loaded.model) is type(source.model)
    ids = torch.randint(5, 64, (2, 130))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids).logits, source(ids).logits)


def test_official_rmt_checkpoint_with_the_resized_vocab_in_its_config(tmp_path):
    """HF's resize_token_embeddings (called by the official wrapper) raises vocab_size to vocab + m: a config saved
    from that model says 64 + 4; mem_token_ids say where the memory tokens start."""
    from genalm_models.config import RMTConfig
    from genalm_models.rmt import RMT

    source = RMT(GenaForSequenceClassification(tiny_config()), RMTConfig(num_mem_tokens=4)).eval()
    folder = write_official_rmt_folder(tmp_path / "resized", source, vocab_size=68)
    loaded, report = load_model(folder, head="sequence_classification")
    assert report.clean and loaded.model.config.vocab_size == 64 and loaded.num_mem_tokens == 4
    # inconsistent buffers fail loudly
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state["mem_token_ids"] = torch.tensor([64, 65, 67, 66])
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: mem_token_ids .* not consecutive"):
        load_model(folder)


def test_an_official_rmt_checkpoint_under_the_wrong_head_fails_loudly(tmp_path):
    from genalm_models.config import RMTConfig
    from genalm_models.rmt import RMT

    source = RMT(GenaForSequenceClassification(tiny_config()), RMTConfig(num_mem_tokens=4)).eval()
    folder = write_official_rmt_folder(tmp_path / "rmt", source)
    with pytest.raises(CheckpointError, match="pytorch_model.bin: 6 parameter.* of the mlm model are not in the "
                                              "checkpoint .*: model.cls.predictions"):
        load_model(folder, head="mlm")


def test_fused_attention_equals_eager_attention():
    from genalm_models.modeling_gena import set_attention_implementation

    model = GenaForSequenceClassification(tiny_config()).eval()
    ids = torch.randint(5, 64, (3, 30))
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    mask[2, 7:] = 0
    with torch.no_grad():
        fused = model(ids, mask).hidden_states
        eager = set_attention_implementation(model, "eager")(ids, mask).hidden_states
    for row, n in enumerate([30, 20, 7]):
        torch.testing.assert_close(fused[row, :n], eager[row, :n], atol=1e-5, rtol=1e-5)


# ---- problem types: one rule for the loss and the outputs (official BertFor{Sequence,Token}Classification) ------
OFFICIAL_TOKENIZER = OFFICIAL_CONFIGS.parent / "tokenizer_t2t"


def test_problem_type_resolution_follows_the_official_rules():
    def resolved(head, **changes):
        return tiny_config(**changes).resolved_problem_type(head)

    assert resolved("sequence_classification", num_labels=1) == "regression"
    assert resolved("sequence_classification", num_labels=2) == "single_label_classification"
    assert resolved("sequence_classification", num_labels=1,
                    problem_type="multi_label_classification") == "multi_label_classification"
    # official BertForTokenClassification.__init__: absent -> single-label, whatever num_labels is
    assert resolved("token_classification", num_labels=1) == "single_label_classification"
    assert resolved("token_classification", num_labels=3) == "single_label_classification"
    assert resolved("token_classification", num_labels=3,
                    problem_type="multi_label_classification") == "multi_label_classification"
    assert resolved("mlm") == "single_label_classification"
    with pytest.raises(ConfigError, match="embedding"):
        resolved("embedding")


def outputs_of(model, logits):
    """Predictor.outputs of `model` (the transform needs no tokenizer)."""
    from genalm_models.predict import Predictor

    return Predictor(model, tokenizer=None, device="cpu", optimize=False, keep_freed_memory=False).outputs(logits)


def test_one_label_without_problem_type_is_regression():
    torch.manual_seed(0)
    model = GenaForSequenceClassification(tiny_config(num_labels=1)).eval()
    ids = torch.randint(5, 64, (4, 12))
    labels = torch.tensor([0.3, -1.2, 2.5, 0.0])
    out = model(ids, labels=labels)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.view(-1), labels))
    assert out.loss > 0  # a one-class cross-entropy is always 0: the head would learn nothing
    values = outputs_of(model, out.logits)
    torch.testing.assert_close(values, out.logits)  # raw values, not a softmax over one class (always 1.0)
    # and with two labels, still a softmax
    two = GenaForSequenceClassification(tiny_config(num_labels=2)).eval()
    logits = two(ids).logits
    torch.testing.assert_close(outputs_of(two, logits), torch.softmax(logits, dim=-1))


@pytest.mark.parametrize("problem_type, transform", [
    (None, "softmax"),  # official BertForTokenClassification: absent problem_type is single-label
    ("single_label_classification", "softmax"),
    ("multi_label_classification", "sigmoid"),
    ("regression", "raw"),
])
def test_token_head_outputs_and_loss_follow_problem_type(problem_type, transform):
    torch.manual_seed(0)
    model = GenaForTokenClassification(tiny_config(num_labels=3, problem_type=problem_type)).eval()
    ids = torch.randint(5, 64, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    logits = model(ids).logits
    expected = {"softmax": torch.softmax(logits, -1), "sigmoid": torch.sigmoid(logits), "raw": logits}[transform]
    torch.testing.assert_close(outputs_of(model, logits), expected)
    keep = mask.bool()
    if transform == "softmax":
        labels = torch.randint(0, 3, (2, 10))
        labels[0, 0] = -100  # no label on this token
        loss = model(ids, labels=labels, labels_mask=mask).loss
        chosen = keep & (labels != -100)
        torch.testing.assert_close(loss, F.cross_entropy(logits[chosen], labels[chosen]))
        with pytest.raises(ValueError, match="multi_label_classification"):
            model(ids, labels=torch.zeros(2, 10, 3), labels_mask=mask)
    elif transform == "sigmoid":
        labels = (torch.rand(2, 10, 3) > 0.7).float()
        loss = model(ids, labels=labels, labels_mask=mask).loss
        torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits[keep], labels[keep]))
    else:
        labels = torch.randn(2, 10, 3)
        loss = model(ids, labels=labels, labels_mask=mask).loss
        torch.testing.assert_close(loss, F.mse_loss(logits[keep], labels[keep]))


def test_official_spliceai_head_stays_sigmoid():
    """The official SpliceAI fine-tuning: 3 labels (none, acceptor, donor), problem_type multi_label_classification.
    Per-class sigmoids, not a softmax over the three."""
    torch.manual_seed(0)
    model = GenaForTokenClassification(tiny_config(num_labels=3, problem_type="multi_label_classification")).eval()
    logits = model(torch.randint(5, 64, (1, 9))).logits
    values = outputs_of(model, logits)
    torch.testing.assert_close(values, torch.sigmoid(logits))
    assert not torch.allclose(values.sum(-1), torch.ones(1, 9))


@pytest.mark.skipif(not (OFFICIAL_TOKENIZER / "tokenizer.json").is_file(), reason="official tokenizer absent")
def test_predict_of_a_one_label_head_gives_values_not_a_constant():
    from genalm_models.predict import Predictor
    from genalm_models.tokenizer import GenaTokenizer

    tokenizer = GenaTokenizer.from_pretrained(OFFICIAL_TOKENIZER)
    torch.manual_seed(0)
    model = GenaForSequenceClassification(tiny_config(vocab_size=tokenizer.vocab_size, num_labels=1,
                                                      initializer_range=0.2)).eval()
    predictor = Predictor(model, tokenizer, device="cpu", optimize=False, keep_freed_memory=False)
    values = np.stack(predictor.predict(["ACGTTGCAAGGCTTACGATCGATTTACG", "GGGGCCCCAAAATTTTACGTGCA" * 3]))
    assert values.shape == (2, 1)
    assert not np.allclose(values, 1.0) and abs(values[0, 0] - values[1, 0]) > 1e-4


# ---- MLM decoder tying (HF tie_word_embeddings) ----------------------------------------------------------------
def official_mlm_folder(folder: Path, model: GenaForMaskedLM, state: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = model.config.to_dict()
    data["architectures"] = ["BertForMaskedLM"]
    (folder / "config.json").write_text(json.dumps(data))
    torch.save(state if state is not None else official_state_dict(model), folder / "pytorch_model.bin")
    return folder


def test_a_decoder_that_differs_from_the_embeddings_stays_untied(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = GenaForMaskedLM(tiny_config()).eval()
    state = official_state_dict(model)
    decoder = torch.randn_like(state["cls.predictions.decoder.weight"]) * 0.05
    state["cls.predictions.decoder.weight"] = decoder
    folder = official_mlm_folder(tmp_path / "untied", model, state)
    # what the checkpoint computes: the same weights in a model that never ties
    reference = GenaForMaskedLM(tiny_config(tie_word_embeddings=False)).eval()
    reference.load_state_dict({k: v for k, v in state.items() if k != "bert.embeddings.position_ids"})
    assert reference.cls.predictions.decoder.weight is not reference.bert.embeddings.word_embeddings.weight

    loaded, report = load_model(folder)
    assert report.clean, str(report)
    inner = loaded.cls.predictions.decoder.weight
    assert inner is not loaded.bert.embeddings.word_embeddings.weight
    torch.testing.assert_close(inner.detach(), decoder)
    torch.testing.assert_close(loaded.bert.embeddings.word_embeddings.weight.detach(),
                               state["bert.embeddings.word_embeddings.weight"])
    assert loaded.config.tie_word_embeddings is False
    ids = torch.randint(5, 64, (2, 15))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids).logits, reference(ids).logits)
    # saved back: the decoder is written, the config says untied, and it loads again the same
    save_model(loaded, tmp_path / "ours")
    assert "cls.predictions.decoder.weight" in load_file(str(tmp_path / "ours" / "model.safetensors"))
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["tie_word_embeddings"] is False
    again, report = load_model(tmp_path / "ours", strict=True)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(ids).logits, reference(ids).logits)


def test_an_equal_or_absent_decoder_is_tied(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = GenaForMaskedLM(tiny_config()).eval()
    for name, state in [("equal", official_state_dict(model)),
                        ("absent", {k: v for k, v in official_state_dict(model).items()
                                    if k != "cls.predictions.decoder.weight"})]:
        loaded, report = load_model(official_mlm_folder(tmp_path / name, model, state))
        assert report.clean, (name, str(report))
        assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
        assert loaded.config.tie_word_embeddings is None
        save_model(loaded, tmp_path / f"ours_{name}")
        assert "cls.predictions.decoder.weight" not in load_file(str(tmp_path / f"ours_{name}" / "model.safetensors"))
        assert "tie_word_embeddings" not in json.loads((tmp_path / f"ours_{name}" / "config.json").read_text())


def test_rmt_keeps_an_untied_decoder():
    from genalm_models.config import RMTConfig
    from genalm_models.rmt import RMT

    torch.manual_seed(0)
    mlm = GenaForMaskedLM(tiny_config(tie_word_embeddings=False))
    old_decoder = mlm.cls.predictions.decoder.weight.detach().clone()
    rmt = RMT(mlm, RMTConfig(num_mem_tokens=3))
    decoder = rmt.model.cls.predictions.decoder.weight
    assert decoder.shape[0] == 64 + 3 and decoder is not rmt.model.bert.embeddings.word_embeddings.weight
    torch.testing.assert_close(decoder[:64].detach(), old_decoder)
