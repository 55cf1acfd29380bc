"""evo.doctor against the scripted server, and the llm config files composed by Hydra."""
from __future__ import annotations

from pathlib import Path

import pytest

from omegaconf import OmegaConf

from evo.compose import compose_config
from evo.doctor import doctor
from evo.llm.litellm_backend import KEYS, LiteLLMBackend
from evo.llm.models import endpoints
from evo.llm.replay import KEYS as REPLAY_KEYS
from llm_server import ScriptedServer, answer, count_tokens, empty, llm_server, status  # noqa: F401

CONF = Path(__file__).resolve().parents[1] / "conf"


def run_doctor(cfg) -> tuple[int, dict[str, str]]:
    lines: list[str] = []
    code = doctor(cfg, out=lines.append)
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return code, fields


def local(server: ScriptedServer, **over) -> dict:
    return {"backend": "litellm", "model": "openai/local-model", "base_url": server.url,
            "timeout_s": 5, "max_retries": 3, "retry_backoff_s": 0.05, "concurrency": 1, **over}


def test_doctor_ok(llm_server):
    llm_server.script(answer("ok"))
    code, f = run_doctor(local(llm_server, cost_per_token={"input": 1e-6, "output": 1e-6}))
    assert code == 0 and f["status"] == "ok" and llm_server.count == 1
    assert f["model"] == "openai/local-model" and f["endpoint"] == llm_server.url
    assert f["answer"] == "'ok'" and float(f["latency"].split()[0]) > 0
    prompt = "".join(m["content"] for m in llm_server.requests[0]["messages"])
    assert f["tokens"] == f"{count_tokens(prompt)} in, 1 out"
    assert f["cost"].startswith("$0.0000")
    assert "error" not in f


def test_doctor_reports_unpriced_models(llm_server):
    llm_server.script(answer("ok"))
    code, f = run_doctor(local(llm_server))
    assert code == 0 and "no price known" in f["cost"]


def test_doctor_auth_failure_is_one_line_with_a_hint(llm_server, monkeypatch):
    monkeypatch.setenv("EVO_DOCTOR_KEY", "sk-doctor-secret-123456789")
    llm_server.script(status(401, message="Incorrect API key provided: sk-doctor-secret-123456789"))
    lines: list[str] = []
    code = doctor(local(llm_server, api_key_env="EVO_DOCTOR_KEY"), out=lines.append)
    text = "\n".join(lines)
    assert code == 1 and "error:     auth: HTTP 401" in text and "hint:" in text
    assert "sk-doctor-secret-123456789" not in text and "$EVO_DOCTOR_KEY (set)" in text
    assert llm_server.count == 1  # not retried


def test_doctor_missing_key_sends_nothing(monkeypatch):
    monkeypatch.delenv("EVO_DOCTOR_ABSENT", raising=False)
    code, f = run_doctor({"backend": "litellm", "model": "openai/gpt-4o-mini", "api_key_env": "EVO_DOCTOR_ABSENT"})
    assert code == 1 and f["key"] == "$EVO_DOCTOR_ABSENT (NOT SET)"
    assert f["error"] == "auth: environment variable EVO_DOCTOR_ABSENT is not set"


def test_doctor_server_down():
    with ScriptedServer() as server:
        cfg = local(server)
    code, f = run_doctor(cfg)
    assert code == 1 and f["error"].startswith("connection:") and "base_url" in f["hint"]


def test_doctor_retries_at_most_once(llm_server):
    llm_server.script(status(500), status(500), status(500))
    code, f = run_doctor(local(llm_server))
    assert code == 1 and f["error"].startswith("server:") and llm_server.count == 2


def test_doctor_empty_answer(llm_server):
    llm_server.script(empty())
    code, f = run_doctor(local(llm_server))
    assert code == 1 and f["error"].startswith("empty:") and "max_tokens" in f["hint"]


def test_doctor_config_errors():
    assert run_doctor({"backend": "litellm", "model": ""})[0] == 2
    assert run_doctor({"backend": "nonsense"})[0] == 2
    code, f = run_doctor({"backend": "replay", "source": "???"})
    assert code == 2 and "llm.source" in f["error"]
    assert run_doctor({"backend": "offline", "model": "offline-mutation", "concurrency": 4})[0] == 0


# --- the config files -----------------------------------------------------------------

def compose_llm(name: str, *overrides: str) -> dict:
    """The config of the llm file's one model, as the run builds its backend from it
    (``models``, null in every file, is read by evo.llm.models)."""
    llm = compose_config([f"llm={name}", *overrides]).llm
    assert "models" in llm and llm.models is None
    (model,) = endpoints(OmegaConf.to_container(llm, resolve=True))
    return dict(model.config)


@pytest.mark.parametrize("name", ["openai", "anthropic", "local", "replay", "offline"])
def test_every_llm_file_names_its_backend_and_concurrency(name):
    text = (CONF / "llm" / f"{name}.yaml").read_text()
    keys = {line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))}
    assert {"backend", "concurrency"} <= keys


@pytest.mark.parametrize("name", ["openai", "anthropic", "local"])
def test_litellm_files_build_a_backend_and_every_key_is_read(name):
    cfg = compose_llm(name, "llm.model=openai/x" if name == "local" else "seed=0")
    assert set(cfg) <= KEYS
    backend = LiteLLMBackend(cfg)
    assert backend.model and backend.max_retries >= 1 and int(cfg["concurrency"]) >= 1


def test_local_file_model_override_and_env(monkeypatch):
    monkeypatch.setenv("EVO_LOCAL_MODEL", "qwen-test")
    assert LiteLLMBackend(compose_llm("local")).model == "openai/qwen-test"
    monkeypatch.delenv("EVO_LOCAL_MODEL")
    assert LiteLLMBackend(compose_llm("local")).model == "openai/local-model"
    cfg = compose_llm("local", "llm.model=openai/qwen2.5-coder:7b", "llm.base_url=http://127.0.0.1:11434/v1")
    backend = LiteLLMBackend(cfg)
    assert backend.model == "openai/qwen2.5-coder:7b" and backend.base_url.endswith(":11434/v1")
    assert backend.cost_per_token == (0.0, 0.0)


def test_hosted_models_are_priced_by_litellm():
    for name in ("openai", "anthropic"):
        backend = LiteLLMBackend(compose_llm(name))
        assert backend.cost(1000, 1000) > 0, name


def test_replay_file_needs_a_source(tmp_path):
    cfg = compose_llm("replay")
    assert set(cfg) <= REPLAY_KEYS
    assert run_doctor(cfg)[0] == 2


def test_doctor_checks_every_model_of_llm_models(llm_server):
    lines: list[str] = []
    with ScriptedServer() as other:
        other.script(status(401))
        cfg = {**local(llm_server), "models": [{"name": "a"}, {"name": "b", "base_url": other.url}]}
        code = doctor(cfg, out=lines.append)
        assert (llm_server.count, other.count) == (1, 1)
    assert code == 1  # the worst of the two: b's key is refused
    assert "llm.models: a" in lines and "llm.models: b" in lines
    assert lines.index("status:    ok") < lines.index("llm.models: b")
    assert run_doctor({**local(llm_server), "models": [{"name": "a@b"}]})[0] == 2
