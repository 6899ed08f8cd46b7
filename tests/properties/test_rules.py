"""The rules file, as the worker reads and re-reads it: rules or one ConfigError line, whatever
the YAML says."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from config import ConfigError, Settings, read_rules
from incidents.rules import KEYS, Rule, parse_rules
from tests.properties.strategies import QUICK, json_values, texts, words

SETTINGS = Settings(twilio_auth_token="t" * 32, alert_recipients=("+15555550100",))
MONITORS = ("system", "prometheus")
values = (
    json_values
    | st.sampled_from(
        ["system", "prometheus", "cpu", ">", "<=", "5m", "1h", 90, "+15555550100", "keep", "{name}"]
    )
    | words
)
rules = st.lists(st.dictionaries(st.sampled_from(KEYS) | texts, values, max_size=8), max_size=3)


@QUICK
@given(section=rules | json_values)
def test_any_rules_section_gives_rules_or_one_config_error_line(section):
    try:
        parsed = parse_rules(section, SETTINGS, MONITORS, MONITORS)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(parsed, list) and all(isinstance(rule, Rule) for rule in parsed)
    assert len(parsed) <= len(section or [])


@QUICK
@given(text=texts | st.text(st.sampled_from("rules: -name{}[]'\"\n #&*!|>"), max_size=120))
def test_any_rules_file_reads_or_raises_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("rules") / "operator.yml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        read_rules(str(path))
    except ConfigError as exc:
        assert str(exc)
