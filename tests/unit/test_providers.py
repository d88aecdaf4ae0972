from agenttui.domain import ProviderConfig
from agenttui.providers import container_env
from agenttui.redact import Redactor


def test_standard_variable_names_per_provider():
    assert container_env(ProviderConfig(name="ollama", model_id="llama3.2")) == {
        "MODEL_ID": "llama3.2", "OLLAMA_HOST": "http://host.docker.internal:11434"}
    openai = container_env(ProviderConfig(name="openai", model_id="gpt", options={
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "k-123456"}))
    assert openai == {"MODEL_ID": "gpt", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "k-123456"}


def test_aws_default_region_follows_aws_region():
    env = container_env(ProviderConfig(name="bedrock", model_id="m", options={"AWS_REGION": "eu-west-1"}))
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_redactor_masks_given_values_and_known_shapes():
    redact = Redactor(["s3cr3t-value-123"])
    line = "key=s3cr3t-value-123 id=AKIAABCDEFGHIJKLMNOP openai=sk-abcdefghijklmnopqrstuv"
    masked = redact(line)
    assert "s3cr3t-value-123" not in masked and "AKIAABCDEFGHIJKLMNOP" not in masked
    assert "sk-abcdefghijklmnopqrstuv" not in masked and masked.count("[redacted]") == 3
    assert redact("nothing to hide") == "nothing to hide"
