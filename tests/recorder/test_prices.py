"""The price table: data in the package, dated, overridable in config.toml; unknown is None."""

import pytest

from agenttui.core.errors import SettingsError
from agenttui.core.prices import BUILT_IN, PRICES_READ_ON, load_price_table


def test_built_in_prices_are_dated_and_matched_by_model_prefix():
    table = load_price_table({})
    assert table.price_of("openai", "gpt-4o-mini-2024-07-18") == BUILT_IN["openai"]["gpt-4o-mini"]
    assert table.price_of("openai", "gpt-4o-mini").read_on == PRICES_READ_ON
    assert table.price_of("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0") == BUILT_IN["bedrock"][
        "anthropic.claude-3-5-haiku"]
    assert table.cost("openai", "gpt-4o", 1_000_000, 1_000_000) == 12.5


def test_unknown_tokens_or_models_are_unmeasured_never_zero_and_ollama_is_free():
    table = load_price_table({})
    assert table.cost("openai", "gpt-4o", None, 10) is None
    assert table.cost("openai", "some-model-nobody-priced", 10, 10) is None
    assert table.cost("ollama", "llama3.2", 100, 20) == 0.0
    assert table.cost("ollama", "llama3.2", None, None) is None


def test_config_toml_prices_override_and_add():
    table = load_price_table({"prices": {"openai": {"gpt-4o": {"input": 1, "output": 2}},
                                         "ollama": {"llama3.2": {"input": 0.5, "output": 0.5}}}})
    assert table.cost("openai", "gpt-4o", 1_000_000, 1_000_000) == 3.0
    assert table.cost("ollama", "llama3.2", 2_000_000, 0) == 1.0


@pytest.mark.parametrize("prices, said", [
    ({"openai": {"gpt-4o": {"input": "cheap", "output": 1}}},
     "config.toml: [prices.openai.\"gpt-4o\"]: input must be a number of USD per 1M tokens, 0 or more (got 'cheap')"),
    ({"openai": {"gpt-4o": {"input": 1}}}, "output must be a number"),
    ({"openai": 3}, "config.toml: [prices.openai] must be a table of models"),
    ([1], "config.toml: [prices] must be a table of providers"),
])
def test_bad_prices_are_named(prices, said):
    with pytest.raises(SettingsError) as caught:
        load_price_table({"prices": prices})
    assert said in str(caught.value)
