from __future__ import annotations

import json

import pytest

from vitq_plugins.cli import main


@pytest.mark.parametrize("kind", ["quantizers", "recipes", "models", "datasets", "backends"])
def test_listing_json_is_one_document(kind: str, capsys: pytest.CaptureFixture[str], host: object) -> None:
    assert main([kind, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list) and data and all("name" in d for d in data)


def test_quantizers_filter(capsys: pytest.CaptureFixture[str], host: object) -> None:
    assert main(["quantizers", "--filter", "shift*", "--json"]) == 0
    assert [d["name"] for d in json.loads(capsys.readouterr().out)] == [
        "shiftgelu",
        "shiftgelu_fine",
        "shiftmax",
        "shiftmax_log2",
    ]


def test_plugins_json(capsys: pytest.CaptureFixture[str], host: object) -> None:
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [p["name"] for p in data["plugins"]]
    assert names[:4] == [
        "vitq_plugins.papers.uniform.plugin",
        "vitq_plugins.papers.fqvit.plugin",
        "vitq_plugins.papers.ivit.plugin",
        "vitq_plugins.papers.mptq.plugin",
    ]
    assert all({"name", "version", "origin", "hooks"} <= set(p) for p in data["plugins"])
    assert data["failures"] == []


def test_plain_listing(capsys: pytest.CaptureFixture[str], host: object) -> None:
    assert main(["recipes"]) == 0
    assert "fqvit" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["bogus"], ["quantizers", "--nope"], []])
def test_bad_usage_exit_2_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        code = main(argv)
        raise SystemExit(code)
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
