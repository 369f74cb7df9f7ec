"""`run_adapt`'s phases one by one: prepare -> select -> final_fit -> choose -> build_report / write_outputs.

One tiny run (english_g2, 3 steps a fit, the eight example lines) goes through
the phases once; each test checks what one phase hands to the next.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from crnn.weights import load_model
from ocr.adapt import job
from ocr.adapt.job import (
    MIN_NET_LINES,
    WEIGHTS,
    AdaptConfig,
    Option,
    build_report,
    check_config,
    choose,
    final_fit,
    prepare,
    select,
    write_outputs,
)
from ocr.adapt.recipe import SHIPPED, Recipe
from ocr.adapt.train import interpolate
from ocr.config import BASE_LR
from tests.conftest import EXAMPLES, tiny_config

LABELS = [line.split("\t")[1] for line in (EXAMPLES / "gt.tsv").read_text().splitlines()]


def tiny(out: Path, **overrides) -> AdaptConfig:
    return tiny_config(EXAMPLES, out, force=True, **overrides)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimpleNamespace:
    """Every phase of one tiny run, in order."""
    out = tmp_path_factory.mktemp("phases") / "mine"
    prep = prepare(tiny(out))
    selection = select(prep, progress=False)
    fit = final_fit(prep, selection, progress=False)
    choice = choose(prep, selection, fit)
    report = build_report(prep, selection, fit, choice)
    return SimpleNamespace(out=out, prep=prep, selection=selection, fit=fit, choice=choice, report=report)


def test_bad_options_are_refused_before_anything_loads(tmp_path: Path) -> None:
    for overrides, message in (({"max_forgetting": 2.0}, "--max-forgetting"), ({"height": 8}, "--height"),
                               ({"row_crop": 0.9}, "--row-crop"), ({"pseudo_from": "never"}, "pseudo_from")):
        with pytest.raises(ValueError, match=message):
            check_config(tiny(tmp_path, **overrides))
    assert not list(tmp_path.iterdir())


def test_prepare_splits_the_labelled_images_and_sets_the_clock(run) -> None:
    prep = run.prep
    assert len(prep.everything) == 8 and [len(s) for s in prep.train_sets] == [6]
    assert [len(s) for s in prep.held_sets] == [2]
    split = [s.label for s in prep.train_sets[0]] + [s.label for s in prep.held_sets[0]]  # the labels differ
    assert sorted(split) == sorted(s.label for s in prep.everything) == sorted(LABELS)
    assert prep.charset.case is None  # mixed-case labels: case is learnt
    assert prep.model.input_height == prep.view.height and prep.model.row_crop == prep.view.row_crop
    assert prep.train_config.lr == BASE_LR["english_g2"] and prep.train_config.max_steps == 3
    assert prep.train_config.average_share == SHIPPED.average_share
    assert prep.deadline == pytest.approx(prep.started + 120)
    assert 0 < prep.train_config.seconds < 120
    assert len(prep.probe.labels) == 300 and not prep.probe.real


def test_select_reads_the_held_out_images_at_every_weight_and_picks_a_candidate(run) -> None:
    selection, held = run.selection, run.selection.held
    assert held.labels == [s.label for s in run.prep.held_sets[0]]
    assert set(held.by_weight) == set(WEIGHTS) and all(len(r) == 2 for r in held.by_weight.values())
    assert len(held.zero_shot) == 2 and len(held.pretrained) == 2
    assert selection.steps == [3] and selection.candidate in WEIGHTS
    assert selection.candidate == (selection.best if selection.margin >= MIN_NET_LINES else 1.0)
    # The first gate the choice needs was fitted (and timed) on the selection fit.
    assert selection.candidate in held.inside and selection.gate_seconds > 0
    assert len(held.texts(Option(selection.candidate, True))) == 2


def test_final_fit_trains_on_every_labelled_image_from_the_selection_weights(run) -> None:
    fit = run.fit
    assert fit.result.steps == 3 and len(fit.synthesis.train) == 8
    assert fit.self_training is None and fit.pseudo == []
    last = run.selection.last_state
    assert fit.state.keys() == last.keys()
    assert any(not torch.equal(fit.state[k], last[k]) for k in last if last[k].is_floating_point())


def test_a_cold_start_recipe_starts_the_final_fit_from_the_pretrained_weights(run, monkeypatch) -> None:
    starts = []

    def recording(prep, train, scorer, train_config, progress, start=None, extra=()):
        starts.append(start)
        return run.fit.state, run.fit.result, run.fit.synthesis

    monkeypatch.setattr(job, "fit_network", recording)
    final_fit(run.prep, run.selection, progress=False)
    final_fit(replace(run.prep, recipe=Recipe(warm_start=False)), run.selection, progress=False)
    assert starts == [run.selection.last_state, None]


def test_choose_installs_a_gated_option_within_the_limit_or_the_lowest_estimate(run) -> None:
    choice = run.choice
    assert choice.option.weight <= run.selection.candidate
    # With the rendered probe, only gated pairs are tried.
    assert choice.option.fallback and all(option.fallback for option in choice.drops)
    if choice.within_limit:
        assert choice.drops[choice.option] <= run.prep.config.max_forgetting
    else:
        assert choice.drops[choice.option] == min(choice.drops.values())
    expected = interpolate(run.prep.base.network.state_dict(), run.fit.state, choice.option.weight)
    assert all(torch.equal(v, expected[k]) for k, v in choice.network.state_dict().items())


def test_a_recipe_without_the_gate_tries_the_network_alone(run) -> None:
    choice = choose(replace(run.prep, recipe=Recipe(gate=False)), run.selection, run.fit)
    assert not any(option.fallback for option in choice.drops) and not choice.option.fallback


def test_the_report_and_outputs_describe_the_installed_option(run) -> None:
    report, choice = run.report, run.choice
    assert report["selection"]["weight"] == choice.option.weight
    assert report["selection"]["fallback"] is True and "gate" in report["selection"]
    assert report["general"]["estimated_drop"] == choice.drops[choice.option]
    assert report["holdout"]["n"] == 2 and set(report["holdout"]["by_weight"]) == {str(w) for w in WEIGHTS}
    assert report["recipe"] == asdict(SHIPPED) and report["installed"]
    assert "warm_start" not in report["options"]  # study switches are the recipe's, not the user's options
    write_outputs(run.prep, run.selection, run.fit, run.choice, report)
    for name in ("model.pt", "report.json", "report.md", "learning_curve.png"):
        assert (run.out / name).is_file(), name
    assert json.loads((run.out / "report.json").read_text())["recipe"] == asdict(SHIPPED)
    loaded = load_model(run.out.name, directory=run.out.parent)
    assert loaded.metadata["provenance"]["recipe"] == asdict(SHIPPED)
    assert loaded.metadata["provenance"]["interpolation_weight"] == choice.option.weight
