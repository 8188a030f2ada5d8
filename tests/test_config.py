"""Configs: round trip through JSON and errors that name the file, the field and the expectation."""

import json
import os
import stat

import attrs
import pytest

from dse_core.config import from_dict, read_json, to_dict, write_json_atomic
from dse_core.errors import ConfigError


@attrs.frozen(hash=False)
class Toy:
    resolution: int = attrs.field(validator=attrs.validators.gt(0))
    channels: dict[int, int]
    name: str = "toy"
    ratio: float | None = None


def test_round_trip_through_json(tmp_path):
    cfg = Toy(resolution=32, channels={4: 8, 8: 16}, ratio=0.5)
    write_json_atomic(tmp_path / "c.json", to_dict(cfg))
    assert json.loads((tmp_path / "c.json").read_text())["channels"] == {"4": 8, "8": 16}
    assert from_dict(Toy, read_json(tmp_path / "c.json")) == cfg


def test_wrong_type_names_file_field_and_expected_type(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"resolution": "big", "channels": {"4": 8}}))
    with pytest.raises(ConfigError) as err:
        from_dict(Toy, read_json(path), source=path)
    text = str(err.value)
    assert str(path) in text and "$.resolution" in text and "int" in text


def test_unknown_and_missing_fields_are_reported(tmp_path):
    with pytest.raises(ConfigError) as err:
        from_dict(Toy, {"resolution": 4, "channels": {}, "resolutoin": 3}, source="x.json")
    assert "resolutoin" in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_dict(Toy, {"resolution": 4}, source="x.json")
    assert "$.channels" in str(err.value) and "required" in str(err.value)


def test_validator_failures_and_bad_json_are_config_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        from_dict(Toy, {"resolution": -1, "channels": {}}, source="x.json")
    assert "resolution" in str(err.value) and "> 0" in str(err.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_json(bad)


def test_atomic_writes_get_the_users_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        os.umask(0o077)
        write_json_atomic(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644  # not mkstemp's 0600
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))


@attrs.frozen
class Typed:
    count: int = 1
    scale: float = 1.0
    flag: bool = False
    label: str = "x"
    sizes: tuple[int, ...] = ()
    optional: float | None = None


@pytest.mark.parametrize("field, value, message", [
    ("count", 64.7, "$.count: expected int, got float 64.7"),  # cattrs' default would truncate it to 64
    ("count", "sixty-four", "$.count: expected int, got str 'sixty-four'"),
    ("count", "64", "$.count: expected int, got str '64'"),
    ("count", True, "$.count: expected int, got bool True"),  # bool is not an int
    ("scale", "0.01", "$.scale: expected float, got str '0.01'"),
    ("scale", False, "$.scale: expected float, got bool False"),
    ("flag", 1, "$.flag: expected bool, got int 1"),
    ("flag", "false", "$.flag: expected bool, got str 'false'"),
    ("label", 3, "$.label: expected str, got int 3"),
    ("sizes", "abc", "$.sizes: expected a list, got str 'abc'"),  # not ('a', 'b', 'c')
    ("sizes", [1, 2.5], "$.sizes[1]: expected int, got float 2.5"),
    ("optional", "1.5", "$.optional: expected float, got str '1.5'"),
])
def test_types_are_strict_and_errors_say_what_was_expected(field, value, message):
    with pytest.raises(ConfigError) as err:
        from_dict(Typed, {field: value}, source="x.json")
    assert err.value.problems == [message]


def test_an_int_is_a_float_and_json_keys_are_int_keys():
    assert from_dict(Typed, {"scale": 2, "optional": 3, "sizes": [1, 2]}) == Typed(scale=2.0, optional=3.0, sizes=(1, 2))
    assert isinstance(from_dict(Typed, {"scale": 2}).scale, float)
    assert from_dict(Toy, {"resolution": 8, "channels": {"4": 8, 8: 16}}).channels == {4: 8, 8: 16}
    with pytest.raises(ConfigError) as err:
        from_dict(Toy, {"resolution": 8, "channels": {"4": 8.5, "four": 16}}, source="x.json")
    assert sorted(err.value.problems) == ["$.channels['4']: expected int, got float 8.5",
                                          "$.channels['four']: expected int, got str 'four'"]
