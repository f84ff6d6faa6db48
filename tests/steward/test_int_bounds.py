"""Out-of-range integers are a clear error everywhere: argparse and the registry (the API: tests/api/test_hardening.py)."""

from __future__ import annotations

import pytest

from core.errors import NotFoundError, ValidationError


@pytest.mark.parametrize("argv", [
    ["promote", "-c", "c", "--model", "99999999999999999999999"],
    ["promote", "-c", "c", "--model", "1", "--index", "999999999999999999999"],
    ["search", "-c", "c", "--index-version", "99999999999999999999", "--item-id", "a"],
])
def test_cli_refuses_integers_beyond_64_bits(argv, capsys) -> None:
    from steward.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "out of range" in capsys.readouterr().err


def test_the_largest_int64_still_parses() -> None:
    from steward.cli import int64

    assert int64(str(2**63 - 1)) == 2**63 - 1


def test_registry_turns_overflow_into_a_validation_error(registry) -> None:
    registry.catalog.ensure_collection("c", kind="features", dim=4)
    with pytest.raises(ValidationError, match="out of range|refused a value"):
        registry.models.get_index(10**21)
    # past int32 (PostgreSQL's integer column: refused); SQLite stores 64 bits (simply not found)
    with pytest.raises((ValidationError, NotFoundError)):
        registry.models.get_model("c", 99_999_999_999)

