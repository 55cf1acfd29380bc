"""ReplayBackend: a run's answers recorded by the real store, read back with no server."""
from __future__ import annotations

import sqlite3

import pytest

from evo.errors import UserError
from evo.llm import CachedBackend, make_backend
from evo.llm.base import Message, Request
from evo.llm.litellm_backend import LiteLLMBackend
from evo.llm.replay import ReplayBackend, messages_digest
from evo.store import Store
from llm_server import ScriptedServer, empty, heuristic_answer

LLM = {"backend": "litellm", "model": "openai/recorded", "temperature": 0.8, "max_tokens": 512,
       "max_retries": 0, "cost_per_token": {"input": 1e-6, "output": 2e-6}, "concurrency": 2}


def request(sample: int, prompt: str = "Write priority.") -> Request:
    return Request((Message("system", "sys"), Message("user", prompt)), "e1", (), sample)


@pytest.fixture
def recorded(tmp_path):
    """A run folder whose cache holds answers for samples 1..3 (3 failed: empty)."""
    run_dir = tmp_path / "source"
    run_dir.mkdir()
    store = Store.create(run_dir, {"problem": "test", "seed": "0"})
    with ScriptedServer() as server:
        llm = dict(LLM, base_url=server.url)
        cached = CachedBackend(LiteLLMBackend(llm), store, llm)
        originals = {}
        for sample in (1, 2):
            originals[sample] = cached.complete(request(sample, f"prompt {sample}"))
        server.script(empty())
        originals[3] = cached.complete(request(3, "prompt 3"))
        assert server.count == 3
    store.close()
    return run_dir, originals


def test_replay_returns_the_recorded_answers_without_network(recorded):
    run_dir, originals = recorded
    replay = ReplayBackend({"backend": "replay", "source": str(run_dir), "concurrency": 4})
    assert replay.model == "openai/recorded" and len(replay) == 3
    for sample in (1, 2):
        got = replay.complete(request(sample, f"prompt {sample}"))
        want = originals[sample]
        assert got.ok and got.cached
        assert (got.text, got.prompt_tokens, got.completion_tokens) == (want.text, want.prompt_tokens,
                                                                         want.completion_tokens)
        assert got.cost_usd == pytest.approx(want.cost_usd) and got.latency_s == pytest.approx(want.latency_s)
    assert originals[1].text == heuristic_answer(0)
    # A recorded failure replays as that failure.
    assert replay.complete(request(3, "prompt 3")).error.startswith("empty:")


def test_replay_misses(recorded):
    run_dir, _ = recorded
    replay = ReplayBackend({"backend": "replay", "source": run_dir / "run.sqlite", "concurrency": 1})
    assert replay.complete(request(9, "prompt 1")).error == "replay: no recorded answer for sample 9"
    miss = replay.complete(request(1, "another prompt"))
    assert miss.error.startswith("replay: no recorded answer for sample 1") and "different prompt" in miss.error


def test_replay_through_the_cache_of_a_new_run(recorded, tmp_path):
    """llm=replay as the app builds it: make_backend, then the new run's CachedBackend."""
    run_dir, originals = recorded
    cfg = {"backend": "replay", "source": str(run_dir), "concurrency": 4}
    (tmp_path / "replayed").mkdir()
    store = Store.create(tmp_path / "replayed", {"problem": "test", "seed": "0"})
    backend = CachedBackend(make_backend(cfg, "priority", (), 0), store, cfg)
    assert backend.complete(request(2, "prompt 2")).text == originals[2].text
    store.close()
    again = ReplayBackend({"backend": "replay", "source": str(tmp_path / "replayed")})
    assert again.complete(request(2, "prompt 2")).text == originals[2].text


def test_model_name_does_not_matter(recorded):
    run_dir, originals = recorded
    db = sqlite3.connect(run_dir / "run.sqlite")
    with db:
        db.execute("UPDATE llm_cache SET model = 'renamed/model'")
    db.close()
    replay = ReplayBackend({"backend": "replay", "source": str(run_dir)})
    assert replay.model == "renamed/model"
    assert replay.complete(request(1, "prompt 1")).text == originals[1].text


def test_messages_digest_accepts_every_recorded_shape():
    pairs = [["system", "a"], ["user", "b"]]
    dicts = [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}]
    messages = (Message("system", "a"), Message("user", "b"))
    assert messages_digest(pairs) == messages_digest(dicts) == messages_digest(messages)
    assert messages_digest(pairs) != messages_digest(pairs[::-1])


@pytest.mark.parametrize("cfg, match", [
    ({"backend": "replay", "source": "???"}, "llm.source is missing"),
    ({"backend": "replay"}, "llm.source is missing"),
    ({"backend": "replay", "source": "/nonexistent/run"}, "no run database"),
    ({"backend": "replay", "source": "/tmp", "model": "x"}, "unknown key"),
])
def test_bad_source_is_a_user_error(cfg, match):
    with pytest.raises(UserError, match=match):
        ReplayBackend(cfg)


def test_unreadable_database_is_a_user_error(tmp_path):
    (tmp_path / "run.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(UserError, match="cannot read"):
        ReplayBackend({"backend": "replay", "source": str(tmp_path)})
