from __future__ import annotations

import pytest

from vitq_plugins.core.errors import DuplicateNameError
from vitq_plugins.core.errors import UnknownNameError
from vitq_plugins.core.registry import Registry


def test_register_get_list_filter() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("alpha", 1, owner="a")

    @reg.register("beta")
    def _b() -> int:  # decorator form returns the object unchanged
        return 2

    assert reg.get("alpha") == 1
    assert reg.list() == ["alpha", "beta"]
    assert reg.list("b*") == ["beta"]
    assert "alpha" in reg and "gamma" not in reg
    assert reg.owner("alpha") == "a"
    assert len(reg) == 2


def test_duplicate_names_both_owners() -> None:
    reg: Registry[int] = Registry("quantizer")
    reg.register("pts", 1, owner="plugin_a")
    with pytest.raises(DuplicateNameError, match="plugin_a.*plugin_b"):
        reg.register("pts", 2, owner="plugin_b")
    assert reg.get("pts") == 1


def test_unknown_name_suggests_close_matches() -> None:
    reg: Registry[int] = Registry("quantizer")
    for n in ("shiftmax", "shiftgelu", "lis"):
        reg.register(n, 0)
    with pytest.raises(UnknownNameError, match="did you mean 'shiftmax'") as ei:
        reg.get("shiftmx")
    assert "registered:" in str(ei.value)


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_bad_names_rejected(bad: object) -> None:
    reg: Registry[int] = Registry("thing")
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register(bad, 1)  # type: ignore[call-overload]


def test_unregister() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("a", 1)
    assert reg.unregister("a") == 1
    assert "a" not in reg
