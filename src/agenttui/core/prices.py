"""What a model call costs: a price table kept as data (per provider and model, USD per 1M input
and output tokens, with the date the prices were read), overridable in config.toml.

    [prices.openai."gpt-4o-mini"]
    input = 0.15
    output = 0.60

A call whose tokens are unknown costs None ("unmeasured"), never 0: a missing figure must not
read as a free run. A local Ollama call costs 0 unless config.toml gives its model a price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agenttui.core.errors import SettingsError
from agenttui.core.settings_schema import read_config_file

PRICES_READ_ON = "2026-12-01"  # the date the built-in prices below were read from the providers' pages


@dataclass(frozen=True)
class Price:
    input_per_m: float  # USD per 1M input (prompt) tokens
    output_per_m: float  # USD per 1M output (completion) tokens
    read_on: str = PRICES_READ_ON


# provider → model → price. A model id matches its own entry, or the longest entry it starts with
# (so "gpt-4o-mini-2024-07-18" takes "gpt-4o-mini"'s price).
BUILT_IN: dict[str, dict[str, Price]] = {
    "openai": {
        "gpt-4o": Price(2.50, 10.00),
        "gpt-4o-mini": Price(0.15, 0.60),
        "gpt-4.1": Price(2.00, 8.00),
        "gpt-4.1-mini": Price(0.40, 1.60),
        "gpt-4.1-nano": Price(0.10, 0.40),
        "o3": Price(2.00, 8.00),
        "o4-mini": Price(1.10, 4.40),
        "gpt-3.5-turbo": Price(0.50, 1.50),
    },
    "bedrock": {
        "anthropic.claude-3-5-sonnet": Price(3.00, 15.00),
        "anthropic.claude-3-7-sonnet": Price(3.00, 15.00),
        "anthropic.claude-3-5-haiku": Price(0.80, 4.00),
        "anthropic.claude-3-haiku": Price(0.25, 1.25),
        "anthropic.claude-3-sonnet": Price(3.00, 15.00),
        "anthropic.claude-3-opus": Price(15.00, 75.00),
        "anthropic.claude-sonnet-4": Price(3.00, 15.00),
        "anthropic.claude-opus-4": Price(15.00, 75.00),
        "anthropic.claude-haiku-4-5": Price(1.00, 5.00),
        "amazon.nova-micro": Price(0.035, 0.14),
        "amazon.nova-lite": Price(0.06, 0.24),
        "amazon.nova-pro": Price(0.80, 3.20),
        "amazon.nova-premier": Price(2.50, 12.50),
        "amazon.titan-text-express": Price(0.20, 0.60),
        "amazon.titan-text-lite": Price(0.15, 0.20),
        "amazon.titan-text-premier": Price(0.50, 1.50),
        "meta.llama3-1-8b-instruct": Price(0.22, 0.22),
        "meta.llama3-1-70b-instruct": Price(0.72, 0.72),
        "mistral.mistral-7b-instruct": Price(0.15, 0.20),
        "mistral.mixtral-8x7b-instruct": Price(0.45, 0.70),
    },
}
FREE_PROVIDERS = frozenset({"ollama"})  # runs on the user's own machine


class PriceTable:
    """The built-in prices with config.toml's [prices] laid over them."""

    def __init__(self, overrides: dict[str, dict[str, Price]] | None = None):
        self._prices: dict[str, dict[str, Price]] = {p: dict(models) for p, models in BUILT_IN.items()}
        for provider, models in (overrides or {}).items():
            self._prices.setdefault(provider, {}).update(models)

    def price_of(self, provider: str, model: str | None) -> Price | None:
        models = self._prices.get(provider, {})
        if model:
            bare = model.split("/")[-1]
            if bare.startswith(("us.", "eu.", "apac.", "global.")):  # Bedrock inference profiles
                bare = bare.split(".", 1)[1]
            for name in (model, bare):
                if name in models:
                    return models[name]
            prefixes = [m for m in models if bare.startswith(m)]
            if prefixes:
                return models[max(prefixes, key=len)]
        if provider in FREE_PROVIDERS:
            return Price(0.0, 0.0, read_on="")
        return None

    def cost(self, provider: str, model: str | None, tokens_in: int | None, tokens_out: int | None) -> float | None:
        """USD, or None when the tokens or the price are unknown (unmeasured)."""
        if tokens_in is None or tokens_out is None:
            return None
        price = self.price_of(provider, model)
        if price is None:
            return None
        return (tokens_in * price.input_per_m + tokens_out * price.output_per_m) / 1_000_000


def load_price_table(config: dict[str, Any] | None = None) -> PriceTable:
    """The price table with config.toml's [prices] (or `config`'s) overrides; a bad entry raises
    SettingsError naming it."""
    table = (read_config_file() if config is None else config).get("prices") or {}
    if not isinstance(table, dict):
        raise SettingsError("config.toml: [prices] must be a table of providers, e.g. [prices.openai.\"gpt-4o\"]")
    overrides: dict[str, dict[str, Price]] = {}
    for provider, models in table.items():
        if not isinstance(models, dict):
            raise SettingsError(f"config.toml: [prices.{provider}] must be a table of models, each with input and output")
        overrides[provider] = {model: _price(provider, model, entry) for model, entry in models.items()}
    return PriceTable(overrides)


def _price(provider: str, model: str, entry: Any) -> Price:
    where = f'config.toml: [prices.{provider}."{model}"]'
    if not isinstance(entry, dict):
        raise SettingsError(f"{where} must be a table with input and output (USD per 1M tokens)")
    values = []
    for key in ("input", "output"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SettingsError(f"{where}: {key} must be a number of USD per 1M tokens, 0 or more (got {value!r})")
        values.append(float(value))
    return Price(values[0], values[1], read_on=str(entry.get("read_on", "config.toml")))
