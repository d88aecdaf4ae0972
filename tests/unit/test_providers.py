from agenttui.core.domain import ProviderConfig
from agenttui.core.providers import container_env
from agenttui.core.redact import Redactor


def test_standard_variable_names_per_provider():
    # Every client library's name for the endpoint is set too (issue 16: tests/unit/test_providers_env.py).
    assert container_env(ProviderConfig(name="ollama", model_id="llama3.2")) == {
        "MODEL_ID": "llama3.2", "OLLAMA_HOST": "http://host.docker.internal:11434",
        "OLLAMA_API_BASE": "http://host.docker.internal:11434",
        "OLLAMA_BASE_URL": "http://host.docker.internal:11434/v1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "CREWAI_DISABLE_TELEMETRY": "true"}
    openai = container_env(ProviderConfig(name="openai", model_id="gpt", options={
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "k-123456"}))
    assert openai == {"MODEL_ID": "gpt", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "k-123456",
                      "OPENAI_API_BASE": "http://127.0.0.1:9/v1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                      "CREWAI_DISABLE_TELEMETRY": "true"}


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


# ---------------------------------------------------------------------------- issue 8
import json  # noqa: E402

import pytest  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

from agenttui.core.domain import Egress, InvalidRequest, TestRequest  # noqa: E402
from agenttui.sandbox.egress import NetworkPlan, plan_network  # noqa: E402
from agenttui.core.providers import endpoints, split_secrets, submit_errors  # noqa: E402
from agenttui.engine.credentials import resolve_request, retry_secrets  # noqa: E402


def request(**provider):
    return TestRequest.parse(agent_code="def run(q):\n    return q\n", query="q", provider=provider)


@pytest.mark.parametrize(
    "provider, field, fragment",
    [
        ({"name": "skynet"}, "provider.name", "unknown provider"),
        ({"name": "openai", "options": {"OPENAI_BASE_URL": "api.example.com/v1"}}, "provider.options.OPENAI_BASE_URL",
         "http:// or https://"),
        ({"name": "ollama", "options": {"OLLAMA_HOST": "http://:11434"}}, "provider.options.OLLAMA_HOST", "no host"),
        ({"name": "openai", "options": {"OPENAI_BASE_URL": "http://u:p@h/v1"}}, "provider.options.OPENAI_BASE_URL",
         "credentials"),
        ({"name": "ollama", "options": {"lower": "x"}}, "provider.options.lower", "environment variable names"),
        ({"name": "ollama", "options": {"AGENTTUI_QUERY": "x"}}, "provider.options.AGENTTUI_QUERY", "set by agenttui"),
    ],
)
def test_invalid_provider_fields_are_named(provider, field, fragment):
    with pytest.raises(InvalidRequest) as info:
        request(**provider)
    assert fragment in info.value.errors[field], info.value.errors


def test_missing_credentials_are_reported_before_queueing():
    errors = submit_errors(request(name="openai").provider)
    assert set(errors) == {"provider.options.OPENAI_BASE_URL", "provider.options.OPENAI_API_KEY"}
    assert "OPENAI_API_KEY in your environment" in errors["provider.options.OPENAI_API_KEY"]
    errors = submit_errors(request(name="bedrock").provider)
    assert "no AWS credentials" in errors["provider.credentials"] and "AWS_REGION" in errors["provider.options.AWS_REGION"]
    assert submit_errors(request(name="ollama").provider) == {}


def test_secrets_are_split_out_of_the_stored_request():
    config = request(name="openai", options={"OPENAI_BASE_URL": "http://h/v1", "OPENAI_API_KEY": "sk-x",
                                             "MY_TOOL_TOKEN": "t0k3n"}).provider
    stored, values = split_secrets(config)
    assert values == {"OPENAI_API_KEY": "sk-x", "MY_TOOL_TOKEN": "t0k3n"}
    assert stored.options == {"OPENAI_BASE_URL": "http://h/v1"} and stored.secrets == ("MY_TOOL_TOKEN", "OPENAI_API_KEY")
    assert "sk-x" not in stored.model_dump_json()
    env = container_env(stored, secrets=values)
    assert env["OPENAI_API_KEY"] == "sk-x" and env["MY_TOOL_TOKEN"] == "t0k3n"


class FakeCredentials:
    def __init__(self, key, secret, token=None):
        self.access_key, self.secret_key, self.token = key, secret, token

    def get_frozen_credentials(self):
        return self


def sts_stubbed(session):
    client = session.client("sts", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_response(
        "get_session_token",
        {"Credentials": {"AccessKeyId": "ASIASESSIONKEY000001", "SecretAccessKey": "s" * 40,
                         "SessionToken": "session-token-xyz", "Expiration": "2030-01-01T00:00:00Z"}},
        {"DurationSeconds": 1800},
    )
    stub.activate()
    return client


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return tmp_path


def test_bedrock_long_lived_keys_become_session_credentials(aws_env):
    (aws_env / "credentials").write_text("[dev]\naws_access_key_id = AKIALONGLIVED0000001\n"
                                         "aws_secret_access_key = " + "L" * 40 + "\n")
    (aws_env / "config").write_text("[profile dev]\nregion = eu-central-1\n")
    resolved = resolve_request(request(name="bedrock", options={"AWS_PROFILE": "dev"}), duration_s=1800,
                               sts_factory=sts_stubbed)
    options = resolved.provider.options
    assert options["AWS_ACCESS_KEY_ID"] == "ASIASESSIONKEY000001"  # short-lived, not the profile's key
    assert options["AWS_SESSION_TOKEN"] == "session-token-xyz" and options["AWS_REGION"] == "eu-central-1"
    env = container_env(resolved.provider)
    assert "AWS_PROFILE" not in env and env["AWS_DEFAULT_REGION"] == "eu-central-1"


def test_bedrock_temporary_credentials_are_handed_over_as_they_are(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIATEMPORARY0000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "T" * 40)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "sso-token")
    monkeypatch.setenv("AWS_REGION", "us-west-2")

    def no_sts(session):
        raise AssertionError("STS must not be called for temporary credentials")

    resolved = resolve_request(request(name="bedrock"), sts_factory=no_sts)
    assert resolved.provider.options["AWS_SESSION_TOKEN"] == "sso-token"
    # A retry resolves them again from the user's configuration (secrets end with the test).
    stored, _values = split_secrets(resolved.provider)
    fresh = retry_secrets(resolved.model_copy(update={"provider": stored}), sts_factory=no_sts)
    assert fresh["AWS_ACCESS_KEY_ID"] == "ASIATEMPORARY0000001"


def test_bedrock_without_sts_access_keeps_the_keys_with_a_warning(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIALONGLIVED0000002")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "K" * 40)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")

    def denied(session):
        client = session.client("sts", region_name="us-east-1")
        stub = Stubber(client)
        stub.add_client_error("get_session_token", "AccessDenied", "not allowed")
        stub.activate()
        return client

    warnings = []
    resolved = resolve_request(request(name="bedrock"), sts_factory=denied, warn=warnings.append)
    assert resolved.provider.options["AWS_ACCESS_KEY_ID"] == "AKIALONGLIVED0000002"
    assert "AWS_SESSION_TOKEN" not in resolved.provider.options and "long-lived" in warnings[0]


def test_openai_key_comes_from_the_users_environment():
    resolved = resolve_request(request(name="openai"), environ={"OPENAI_API_KEY": "sk-env", "OPENAI_BASE_URL": "http://h/v1"})
    assert resolved.provider.options == {"OPENAI_API_KEY": "sk-env", "OPENAI_BASE_URL": "http://h/v1"}


def test_network_plans_per_egress():
    ollama = endpoints(request(name="ollama").provider, ollama_url="http://127.0.0.1:11434")
    plan, urls = plan_network(Egress.PROVIDER_ONLY, ollama)
    (tunnel,) = plan.tunnels
    assert (tunnel.listen_host, tunnel.listen_port, tunnel.target_host, tunnel.target_port) == ("127.0.0.2", 11434,
                                                                                               "127.0.0.1", 11434)
    assert urls == {"OLLAMA_HOST": "http://host.docker.internal:11434"} and plan.preflight
    assert ("host.docker.internal", "127.0.0.2") in plan.pins
    assert NetworkPlan.from_json(plan.to_json()) == plan
    # A named https endpoint keeps its URL (TLS passes through); the name is pinned in the sandbox.
    openai = endpoints(request(name="openai", options={"OPENAI_BASE_URL": "https://llm.example.com/v1"}).provider)
    plan, urls = plan_network(Egress.PROVIDER_ONLY, openai)
    assert urls == {"OPENAI_BASE_URL": "https://llm.example.com/v1"} and plan.tunnels[0].listen_port == 443
    assert ("llm.example.com", "127.0.0.2") in plan.pins and plan.tunnels[0].probe_path == "/v1/models"
    # Full: only loopback endpoints need the tunnel; none: nothing at all.
    assert plan_network(Egress.FULL, openai)[0].tunnels == ()
    assert len(plan_network(Egress.FULL, ollama)[0].tunnels) == 1
    assert plan_network(Egress.NONE, ollama) == (NetworkPlan(Egress.NONE, preflight=False), {})
    bedrock = endpoints(request(name="bedrock", options={"AWS_REGION": "eu-west-1"}).provider)
    assert bedrock[0].url == "https://bedrock-runtime.eu-west-1.amazonaws.com" and bedrock[0].env_var is None


def test_redactor_masks_credential_shapes_bearer_tokens_and_key_blocks():
    redact = Redactor()
    aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert aws_secret not in redact(f"secret={aws_secret}")
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert redact(f"commit {sha}") == f"commit {sha}"  # hex digests are not secrets
    assert redact("Authorization: Bearer abc.def-123_XYZ") == "Authorization: Bearer [redacted]"
    lines = ["before", "-----BEGIN RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA", "abcd", "-----END RSA PRIVATE KEY-----",
             "after"]
    assert [redact(line) for line in lines] == ["before", "[redacted]", "[redacted]", "[redacted]", "[redacted]", "after"]
    inline = json.dumps({"k": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"})
    assert "AAAA" not in redact(inline)


def test_redactor_masks_the_head_of_a_secret_cut_by_truncation():
    redact = Redactor(["supersecretvalue123"])
    assert redact("x" * 10 + "supersec …[line truncated: 99 bytes]") == "x" * 10 + "[redacted] …[line truncated: 99 bytes]"


def test_redactor_lines_masks_a_batch_exactly_as_line_by_line():
    secrets = ["supersecretvalue123", "hunter2-long"]
    batches = [
        [f"step {n}" for n in range(50)],  # nothing to mask: returned as is
        ["token=hunter2-long", "id AKIAABCDEFGHIJKLMNOP", "plain", "Authorization: bearer abcdefgh123"],
        ["-----BEGIN RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA"],  # a key block across batches
        ["abcd", "-----END RSA PRIVATE KEY----- after", "tail"],
        ["x" * 10 + "supersec …[line truncated: 99 bytes]", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
    ]
    by_batch, by_line = Redactor(secrets), Redactor(secrets)
    for batch in batches:
        assert by_batch.lines(batch) == [by_line(text) for text in batch]
    clean = batches[0]
    assert Redactor(secrets).lines(clean) is clean
