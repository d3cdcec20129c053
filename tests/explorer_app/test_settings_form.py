"""The settings form model: keys seeded once, read back atomically, bad fields named."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from explorer_app import settings_form
from explorer_app.settings_form import OTHER
from explorer_app.settings_form import key
from explorer_app.state import Settings
from vitq_plugins.core.errors import VitqError

MODELS = ["vit_test_tiny", "vit_tiny_cifar10"]
DATASETS = ["cifar10_bundled"]


def test_seed_then_read_round_trips() -> None:
    ss: dict[str, Any] = {}
    s = Settings(model="vit_test_tiny", n_eval=300)
    assert settings_form.seed(ss, s, MODELS, DATASETS)
    assert settings_form.read(ss, s) == s


def test_typed_values_are_not_reseeded_until_the_settings_change() -> None:
    ss: dict[str, Any] = {}
    s = Settings(model="vit_test_tiny", n_eval=300)
    settings_form.seed(ss, s, MODELS, DATASETS)
    ss[key("n_eval")] = 400  # typed
    assert not settings_form.seed(ss, s, MODELS, DATASETS)
    new = settings_form.read(ss, s)
    assert new.n_eval == 400
    ss[settings_form.SEEDED] = new  # applied
    ss[key("n_eval")] = 500  # the second change of the same field (issue 21, item 1)
    assert not settings_form.seed(ss, new, MODELS, DATASETS)
    assert settings_form.read(ss, new).n_eval == 500
    elsewhere = replace(new, recipe="ivit")  # another page loaded a config: the form follows it
    assert settings_form.seed(ss, elsewhere, MODELS, DATASETS)
    assert ss[key("recipe")] == "ivit" and ss[key("n_eval")] == 400


def test_a_dropped_key_is_reseeded() -> None:
    ss: dict[str, Any] = {}
    s = Settings(model="vit_test_tiny")
    settings_form.seed(ss, s, MODELS, DATASETS)
    del ss[key("seed")]  # Streamlit drops widget keys of a page that did not run
    assert settings_form.seed(ss, s, MODELS, DATASETS)
    assert ss[key("seed")] == s.seed


def test_other_model_and_upload() -> None:
    ss: dict[str, Any] = {}
    s = Settings(model="/tmp/w.safetensors")
    settings_form.seed(ss, s, MODELS, DATASETS)
    assert ss[key("pick")] == OTHER and ss[key("other")] == "/tmp/w.safetensors"
    assert settings_form.read(ss, s, model="/cache/x.pt").model == "/cache/x.pt"
    ss[key("other")] = "  "
    with pytest.raises(VitqError, match="'other' is picked but no timm name"):
        settings_form.read(ss, s)


def test_no_candidate_is_named() -> None:
    ss: dict[str, Any] = {}
    s = Settings(model="vit_test_tiny")
    settings_form.seed(ss, s, MODELS, DATASETS)
    ss[key("candidates")] = []
    with pytest.raises(VitqError, match="candidate bits: pick at least one of 2, 3"):
        settings_form.read(ss, s)
