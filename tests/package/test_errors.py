"""Issue 18, case 5: errors in the sheet and the config say where they are (file, line as an editor or a
spreadsheet shows it, column or setting, value) and what is wrong."""
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ratingflow.config import ConfigError, load_config, merged
from ratingflow.sheet import SheetError, check_schema

ROOT = Path(__file__).resolve().parents[2]
CONFIG_SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
SHEET_SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "stations.schema.yaml").read_text())


def test_sheet_schema_errors_name_file_line_column_and_value(tmp_path):
    sheet = pd.read_csv(ROOT / "config" / "stations.tsv", sep="\t", dtype=str, keep_default_na=False)
    check_schema(sheet, SHEET_SCHEMA, "stations.tsv")  # the demo sheet is fine
    bad = sheet.copy()
    bad.loc[0, "station_id"] = "../x"  # the first station: line 2 under the header
    with pytest.raises(SheetError, match=r"^stations.tsv, line 2, column 'station_id': '\.\./x' does not match"):
        check_schema(bad, SHEET_SCHEMA, "stations.tsv")
    bad = sheet.copy()
    bad.loc[4, "discharge_unit"] = "m3/h"
    with pytest.raises(SheetError, match=r"line 6, column 'discharge_unit': 'm3/h' is not one of"):
        check_schema(bad, SHEET_SCHEMA, "stations.tsv")


def test_a_python_tag_in_the_config_is_refused_with_its_line(tmp_path):
    path = tmp_path / "config.yaml"
    text = (ROOT / "config" / "config.yaml").read_text()
    path.write_text(text + 'evil: !!python/object/apply:os.system ["echo hi"]\n')
    line = len(text.splitlines()) + 1
    with pytest.raises(ConfigError, match=rf"config.yaml, line {line}, column 7: could not determine a constructor "
                                          r"for the tag .*YAML tags such as !!python/\.\.\. are refused"):
        load_config(path, CONFIG_SCHEMA)


def test_config_schema_errors_name_line_and_setting(tmp_path):
    path = tmp_path / "config.yaml"
    text = (ROOT / "config" / "config.yaml").read_text()
    lines = text.splitlines()
    (index,) = [i for i, s in enumerate(lines) if s.strip().startswith("num_chains:")]
    lines[index] = "  num_chains: 0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=rf"config.yaml, line {index + 1}, setting sampler.num_chains: 0 is less than"):
        load_config(path, CONFIG_SCHEMA)
    path.write_text("- a\n- list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(path, CONFIG_SCHEMA)
    path.write_text("seed: [1, 2\n")
    with pytest.raises(ConfigError, match=r"config.yaml, line 2, column 1: .*expected ',' or ']'"):
        load_config(path)


def test_command_line_config_stays_on_top_of_the_file():
    base = {"sampler": {"num_chains": 4, "num_warmup": 1000}, "strict": False}
    assert merged(base, {"sampler": {"num_chains": 2}, "strict": True}) == {
        "sampler": {"num_chains": 2, "num_warmup": 1000}, "strict": True}
