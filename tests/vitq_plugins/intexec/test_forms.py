"""The integer-form registry: papers register their LayerNorm/softmax/GELU units, converters find them by name."""

from __future__ import annotations

import pytest

from vitq_plugins.core.errors import VitqError
from vitq_plugins.intexec import extension as ext


def test_forms_are_found_through_the_quantizer_registry() -> None:
    # the paper modules are imported on first lookup (next to the quantizer's wing adapters)
    names = {
        ("layernorm", "ilayernorm"): "ILayerNorm",
        ("softmax", "shiftmax"): "Shiftmax",
        ("softmax", "shiftmax_log2"): "ShiftmaxLog2",
        ("gelu", "shiftgelu_fine"): "ShiftGELUFine",
        ("gelu", "shiftgelu"): "ShiftGELU",
        ("layernorm", "pts"): "PtsLayerNorm",
        ("softmax", "lis"): "LisSoftmax",
    }
    for (kind, name), cls in names.items():
        form = ext.find_integer_form(kind, name, "fx")
        assert form is not None and form.__name__ == cls, (kind, name)
        assert ext.find_integer_form(kind, name, "brevitas") is form
        assert issubclass(form, ext.IntegerForm) and form.kind == kind and form.form_name == name
    assert ext.find_integer_form("grid", "pts") is not None


def test_sites_without_a_form() -> None:
    assert ext.find_integer_form("gelu", "") is None
    assert ext.find_integer_form("gelu", "minmax") is None  # its paper package has no integer module
    assert ext.find_integer_form("layernorm", "exact", "fx") is None  # generic form, no converter builder
    with pytest.raises(VitqError, match=r"no integer softmax form 'shiftmx'; did you mean 'shiftmax'"):
        ext.integer_form("softmax", "shiftmx")


def test_register_rejects_unknown_kinds_and_clashes() -> None:
    with pytest.raises(ValueError, match="unknown integer form kind"):
        ext.register_integer_form("matmul", "x")
    with pytest.raises(ValueError, match="already"):

        @ext.register_integer_form("layernorm", "exact")
        class Other(ext.LayerNormForm):
            pass


def test_forms_list_by_kind() -> None:
    ext.discover_integer_forms()
    assert {"ilayernorm", "pts"} <= set(ext.integer_form_names("layernorm", "fx"))
    assert "exact" in ext.integer_form_names("layernorm")
