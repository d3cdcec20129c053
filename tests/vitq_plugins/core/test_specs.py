from __future__ import annotations

import pytest

from vitq_plugins.core.errors import VitqError
from vitq_plugins.core.manager import PluginHost
from vitq_plugins.core.specs import SITES
from vitq_plugins.core.specs import QuantizerSpec
from vitq_plugins.core.specs import load_ref


def _spec(**kw: object) -> QuantizerSpec:
    args: dict[str, object] = dict(
        name="x", sites=frozenset({"act"}), min_bits=2, max_bits=8, default_bits=8, description="d"
    )
    args.update(kw)
    return QuantizerSpec(**args)  # type: ignore[arg-type]


def test_quantizer_spec_validation() -> None:
    with pytest.raises(ValueError, match="sites"):
        _spec(sites=frozenset({"nowhere"}))
    with pytest.raises(ValueError, match="min_bits"):
        _spec(min_bits=8, max_bits=4, default_bits=6)
    with pytest.raises(ValueError, match=r"wing_bits\['fx'\]"):
        _spec(wing_bits={"fx": (2, 12)})
    with pytest.raises(TypeError):  # keyword-only: a positional spec is a mistake waiting to happen
        QuantizerSpec("x", frozenset({"act"}), 2, 8, 8, "d")  # type: ignore[misc]


def test_any_wing_name_is_accepted_and_checked_at_use() -> None:
    spec = _spec(backends={"tvm": "json:dumps"})
    assert spec.factory("tvm") is __import__("json").dumps
    with pytest.raises(VitqError, match="has no 'fx' implementation"):
        spec.factory("fx")


def test_check_bits_names_value_and_range() -> None:
    spec = _spec(name="lisx", sites=frozenset({"softmax_output"}), default_bits=4, wing_bits={"fx": (2, 6)})
    assert spec.check_bits(4) == 4
    for bad in (0, 9, -1, True, 4.0):
        with pytest.raises(VitqError, match=r"valid 2\.\.8"):
            spec.check_bits(bad)  # type: ignore[arg-type]
    assert spec.bit_range("fx") == (2, 6) and spec.bit_range("brevitas") == (2, 8)
    assert spec.check_bits(8, "brevitas") == 8
    with pytest.raises(VitqError, match=r"in the fx backend: valid 2\.\.6"):
        spec.check_bits(7, "fx")


def test_load_ref_errors() -> None:
    assert load_ref("json:dumps") is __import__("json").dumps
    with pytest.raises(VitqError, match="expected 'package.module:attribute'"):
        load_ref("json.dumps")
    with pytest.raises(VitqError, match="cannot import"):
        load_ref("no_such_mod_xyz:f")
    with pytest.raises(VitqError, match="no attribute"):
        load_ref("json:nope")


@pytest.fixture(scope="module")
def builtin_host() -> PluginHost:
    return PluginHost(autoload=False)


def test_every_builtin_quantizer_is_well_formed(builtin_host: PluginHost) -> None:
    assert builtin_host.failures == []
    for name, spec in builtin_host.quantizers.items():
        assert spec.name == name
        assert set(spec.sites) <= set(SITES)
        # Brevitas and FX for every quantizer; a later wing (pt2e) may lack some, which config validation
        # refuses when the config is planned (tests/vitq_plugins/test_backends_agree.py)
        assert {"brevitas", "fx"} <= set(spec.backends), f"{name} lacks an adapter for a wing"
        assert set(spec.backends) <= set(builtin_host.backends), f"{name} has an adapter for an unknown wing"
        assert spec.description and spec.paper


def test_every_recipe_uses_registered_quantizers_at_valid_sites(builtin_host: PluginHost) -> None:
    for name, recipe in builtin_host.recipes.items():
        assert recipe.name == name
        for site, qname in recipe.quantizers.items():
            assert site in builtin_host.quantizers.get(qname).sites, (name, site, qname)


def test_expected_builtins_present(builtin_host: PluginHost) -> None:
    assert {"minmax", "fqvit", "ivit", "mptq"} <= set(builtin_host.recipes.list())
    assert {"pts", "lis", "shiftmax", "shiftgelu", "ilayernorm", "optm"} <= set(
        builtin_host.quantizers.list()
    )
    assert {"brevitas", "fx", "pt2e"} == set(builtin_host.backends.list())
    assert "vit_tiny_cifar10" in builtin_host.models
