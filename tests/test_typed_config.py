"""The one typed-config mechanism (genalm_models/typed_config.py, OmegaConf structured configs): the run config with
its typed `model.rmt` / `data.args` sections, task options, the corpus config; every recipe loads."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from genalm_models import typed_config
from genalm_models.tasks import make_task
from genalm_models.train.config import RunConfig, RunConfigError

ROOT = Path(__file__).resolve().parents[1]
# the recipes, and the run configs bundled with the exported models
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml")) + sorted((ROOT / "plugin" / "zoo").rglob("run_config.yaml"))
BASE = {"model": {"tokenizer": "tok"}, "data": {"packed": "p"}}


@pytest.mark.parametrize("recipe", RECIPES, ids=[str(p.relative_to(ROOT)) for p in RECIPES])
def test_every_recipe_loads_and_round_trips(recipe, tmp_path):
    cfg = RunConfig.load(recipe)
    cfg.save(tmp_path / "config.yaml")
    assert RunConfig.load(tmp_path / "config.yaml").to_dict() == cfg.to_dict()


def test_there_are_recipes_to_load():
    assert len(RECIPES) >= 20


def one_line_error(data, source="run.yaml") -> str:
    with pytest.raises(RunConfigError) as caught:
        RunConfig.from_dict(data, source)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{source}: ")
    return message


def test_errors_name_the_file_and_the_dotted_key():
    assert "unknown key train.stepz (did you mean steps?)" in one_line_error({**BASE, "train": {"stepz": 3}})
    assert one_line_error({**BASE, "train": {"steps": 2.5}}).endswith("train.steps: expected int, got 2.5")
    assert one_line_error({**BASE, "train": {"dropout": "maybe"}}).endswith(
        "train.dropout: expected bool, got 'maybe'")
    assert one_line_error({**BASE, "optim": {"betas": [0.9, "x"]}}).endswith(
        "optim.betas[1]: expected float, got 'x'")
    # the open sections are typed by the classes that read them
    config = {**BASE, "model": {"tokenizer": "t", "config": {"hidden_size": "wide"}}}
    assert one_line_error(config).endswith("model.config.hidden_size: expected int or None, got 'wide'")
    config = {**BASE, "model": {"tokenizer": "t", "config": {"hiden_size": 64}}}
    assert "unknown key model.config.hiden_size (did you mean hidden_size?)" in one_line_error(config)
    rmt = {**BASE, "model": {"tokenizer": "t", "rmt": {"num_mem_tokens": "ten"}}}
    assert one_line_error(rmt).endswith("model.rmt.num_mem_tokens: expected int, got 'ten'")
    promoter = {"tss_bed": "t.bed", "fasta": "g.fa"}
    task = {**BASE, "data": {"task": "promoter", "args": {**promoter, "upstream": "far"}}}
    assert one_line_error(task).endswith("data.args.upstream: expected int, got 'far'")
    task = {**BASE, "data": {"task": "promoter", "args": {**promoter, "split": {"gapp": 3}}}}
    assert "unknown key data.args.split.gapp (did you mean gap?)" in one_line_error(task)
    task = {**BASE, "data": {"task": "promoter", "args": {"fasta": "g.fa"}}}
    assert one_line_error(task).endswith("data.args.tss_bed is required")
    task = {**BASE, "data": {"task": "promoter", "args": {**promoter, "upstream": -1}}}
    assert "data.args: upstream/downstream must be >= 0" in one_line_error(task)
    assert "data.task must be mlm or one of promoter" in one_line_error({**BASE, "data": {"task": "promotor"}})


def test_values_are_converted_where_nothing_is_lost():
    data = {**BASE, "optim": {"lr": "1e-4", "warmup_steps": "10"}, "model": {"tokenizer": "t", "freeze": "pos"},
            "data": {"task": "promoter", "args": {"tss_bed": Path("t.bed"), "fasta": "g.fa", "upstream": "249",
                                                  "split": {"test": "chr20:1-100"}}}}
    cfg = RunConfig.from_dict(data)
    assert cfg.optim.lr == 1e-4 and cfg.optim.warmup_steps == 10
    assert cfg.model.freeze == ["pos"]                       # a single value where a list is expected
    # data.args keeps only what was given (make_task fills the rest), with converted values
    assert cfg.data.args == {"tss_bed": "t.bed", "fasta": "g.fa", "upstream": 249, "split": {"test": ["chr20:1-100"]}}


def test_overrides_merge_as_yaml_values(tmp_path):
    recipe = ROOT / "recipes" / "zoo" / "promoter_2k.yaml"
    cfg = RunConfig.load(recipe, ["optim.lr=3e-4", "data.args.upstream=249", "model.rmt=null", "train.steps=7"])
    assert (cfg.optim.lr, cfg.data.args["upstream"], cfg.model.rmt, cfg.train.steps) == (3e-4, 249, None, 7)
    with pytest.raises(RunConfigError, match=r"^override 'optim' is not of the form section\.key=value$"):
        RunConfig.load(recipe, ["optim"])
    with pytest.raises(RunConfigError, match=r"promoter_2k\.yaml: train\.steps: expected int, got 'lots'"):
        RunConfig.load(recipe, ["train.steps=lots"])
    dated = tmp_path / "dated.yaml"
    dated.write_text("model: {tokenizer: tok}\ndata: {packed: p}\ntrain: {seed: 2024-01-01}\n")  # YAML reads a date
    for overrides in ([], ["train.steps=3"]):
        with pytest.raises(RunConfigError, match=r"^\S*dated\.yaml: train\.seed: .*date") as caught:
            RunConfig.load(dated, overrides)
        assert "\n" not in str(caught.value)


def test_task_options_go_through_the_same_mechanism():
    task = make_task("chromatin", {"path": "x.csv", "crop": "100", "valid_path": Path("v.csv")}, seed=3)
    assert (task.config.crop, task.config.valid_path, task.config.seed) == (100, "v.csv", 3)
    with pytest.raises(ValueError, match=r"^chromatin task: n_labels: expected int, got 1\.5$"):
        make_task("chromatin", path="x", n_labels=1.5)


@dataclass
class Ranges:
    pair: tuple[int, int] = (1, 2)
    names: list[str] = field(default_factory=list)


def test_tuple_errors_name_their_key():
    """OmegaConf names no key for a bad tuple; the helper finds it."""
    with pytest.raises(ValueError, match=r"^here: pair: expected tuple\[int, int\], got \[1, 2, 3\]$"):
        typed_config.build(Ranges, {"pair": [1, 2, 3]}, "here")
    assert typed_config.build(Ranges, {"pair": ["3", 4], "names": 7}, "here") == Ranges((3, 4), ["7"])


def test_the_corpus_config_is_typed_by_the_same_mechanism():
    from genalm_models.pretrain.corpus import CorpusConfig, CorpusError

    config = CorpusConfig(fasta_paths=Path("g.fa"), output_dir=Path("out"), passes="3", contigs=[20, "chr21"],
                          sentence_bp=[500, "900"], max_n_fraction=1)
    assert (config.fasta_paths, config.output_dir, config.passes, config.contigs) == (["g.fa"], "out", 3,
                                                                                     ["20", "chr21"])
    assert config.sentence_bp == (500, 900) and config.max_n_fraction == 1.0
    for bad, message in [(dict(passes=2.5), "passes: expected int, got 2.5"),
                         (dict(sentence_bp=(1, 2, 3)), r"sentence_bp: expected tuple\[int, int\], got \(1, 2, 3\)"),
                         (dict(both_strands="sometimes"), "both_strands: expected bool, got 'sometimes'")]:
        with pytest.raises(CorpusError, match=f"^invalid corpus config: {message}$") as caught:
            CorpusConfig(fasta_paths=["g.fa"], output_dir="out", **bad)
        assert "\n" not in str(caught.value)


def test_a_yaml_boolean_for_a_text_field_is_refused_not_turned_into_true(tmp_path):
    """`name: yes` in YAML is the boolean true; OmegaConf alone would store the text "True"."""
    with pytest.raises(ValueError, match=r"^here: names\[1\]: expected text, got the boolean true \(YAML reads"):
        typed_config.build(Ranges, {"names": ["a", True]}, "here")
    with pytest.raises(ValueError, match=r"^here: names: expected text, got the boolean false"):
        typed_config.build(Ranges, {"names": False}, "here")
    run = tmp_path / "run.yaml"
    run.write_text("model: {tokenizer: yes}\ndata: {packed: p}\n")
    with pytest.raises(RunConfigError, match=r"run\.yaml: model\.tokenizer: expected text, got the boolean true"):
        RunConfig.load(run)
    task = {**BASE, "data": {"task": "promoter", "args": {"tss_bed": "t.bed", "fasta": False}}}
    assert "data.args.fasta: expected text, got the boolean false" in one_line_error(task)
