"""Your own logs end to end: a log of the shape real archives have (historic, one user-defined action, ratings,
genres, titles with punctuation), profiling with a trained model (resumable, nobody dropped), and training on your
labels."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pandas as pd
import pytest
from conftest import run_cli

import usergpt.profiling as profiling
from usergpt.baselines import mub_profile
from usergpt.config import EvaluateConfig, SemantizeConfig
from usergpt.examples import ratings_log, write_example, write_jsonl
from usergpt.knowledge import load_tag_schema
from usergpt.model import ModelConfig, build_tiny_qwen, save_model, train_tokenizer
from usergpt.semantize import parse_mub, semantize


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    "The ratings example (40 users) as files, and its MUB as `usergpt-semantize` writes it without a profile."
    d = tmp_path_factory.mktemp("example")
    paths = write_example(d / "logs", n_users=40, seed=7)
    run_cli("usergpt-semantize", "--events", str(paths["events"]), "--out", str(d / "sem"), "--salient",
            "movies:rating")
    return d, paths


def test_a_historic_single_action_log_keeps_every_users_whole_history(example):
    d, paths = example
    manifest = json.loads((d / "sem" / "manifest.json").read_text())
    assert manifest["counts"]["quarantined"] == 0 and manifest["counts"]["read"] == manifest["counts"]["semantized"]
    events = pd.read_json(paths["events"], lines=True, dtype={"ts": str})
    docs = pd.read_parquet(d / "sem" / "mub").set_index("user_id")
    assert sorted(docs.index) == sorted(events.user_id.unique())
    for uid, ev in events.groupby("user_id"):
        lines = parse_mub(docs.mub_text[uid])
        covered = {l.time[:4] for l in lines}
        assert set(ev.ts.str[:4]) <= covered, uid                     # every year of the history
        assert max(l.time for l in lines) == max(ev.ts.str[:10]), uid  # up to the last day
        ev = ev.assign(t=pd.to_datetime(ev.ts)).sort_values("t", kind="stable")
        repeats = ((ev.entity == ev.entity.shift()) & (ev.t - ev.t.shift()).dt.total_seconds().le(1800)).sum()
        # what the MUB does not count: repeats, and the rarest genres of a slice beyond its top-K
        assert sum(l.count for l in lines) == docs.events_in_mub[uid] >= 0.95 * (len(ev) - repeats), uid
        assert all(l.categories and sum(l.category_counts) > 0 for l in lines), uid  # the genre distribution
        genres = ev.category.value_counts()
        shown = {c: n for l in lines for c, n in zip(l.categories, l.category_counts)}
        assert genres.index[0] in shown, uid                          # the user's most rated genre is there
    c = manifest["counts"]
    assert c["filtered_uninformative"] == 0 and c["read"] - docs.events_in_mub.sum() == (
        c["repeats_collapsed"] + c["outside_window_or_top_k"])       # nothing outside the window is dropped


def test_titles_stay_intact_and_are_not_knowledge_base_evidence(example):
    d, paths = example
    events = pd.read_json(paths["events"], lines=True)
    text = "\n".join(pd.read_parquet(d / "sem" / "mub").mub_text)
    article = next(t for t in events.entity if ", The (" in t)
    listed = [e for doc in pd.read_parquet(d / "sem" / "mub").mub_text for l in parse_mub(doc) for e in l.entities]
    assert any(e.startswith(article + " · rating ") for e in listed)  # article, year and comma read back as written
    assert f'"{article} · rating ' in text                            # quoted in the text, since it holds a comma
    kb_words = [e for e in listed if "Diapers" in e or "Cats & Dogs" in e]
    assert kb_words
    cats = sum((mub_profile(doc)["cat"] for doc in pd.read_parquet(d / "sem" / "mub").mub_text), Counter())
    assert not {"diapers", "cat_supplies", "dog_supplies", "gym"} & set(cats)
    assert {"drama", "comedy"} <= set(cats)                           # the log's own categories are features


def test_time_bounds_and_high_impact_per_source(tmp_path):
    rows = [dict(user_id="u", ts=ts, source=src, action=act, entity=ent, category="drama")
            for ts, src, act, ent in [("1985-03-01T10:00:00", "movies", "rate", "Old Film (1950)"),
                                      ("1985-03-02T10:00:00", "movies", "view", "Seen Film (1951)"),
                                      ("1986-01-05T10:00:00", "movies", "rate", "Recent Film (1985)")]]
    log = write_jsonl(pd.DataFrame(rows), tmp_path / "log.jsonl")
    docs = lambda cfg, name: (semantize(log, tmp_path / name, cfg, progress=False),
                              pd.read_parquet(tmp_path / name / "mub").mub_text.iloc[0])
    _, whole = docs(SemantizeConfig(as_of=""), "whole")   # a source of your own keeps every action
    assert "Old Film (1950)" in whole and "Seen Film (1951)" in whole and "Recent Film (1985)" in whole
    _, named = docs(SemantizeConfig(as_of="", source_high_impact=["movies:rate"]), "named")
    assert "Old Film (1950)" in named and "Seen Film (1951)" not in named
    res, bounded = docs(SemantizeConfig(as_of="", min_ts="1986-01-01"), "bounded")
    assert res["counts"]["quarantined"] == 2 and "Old Film" not in bounded
    q = [json.loads(l) for l in (tmp_path / "bounded" / "quarantine.jsonl").read_text().splitlines()]
    assert {(r["row"], r["field"], r["reason"]) for r in q} == {
        (1, "ts", "timestamp before semantize.min_ts (1986-01-01)"),
        (2, "ts", "timestamp before semantize.min_ts (1986-01-01)")}


def _tiny_model(mub: pd.DataFrame, path):
    tok = train_tokenizer(list(mub.mub_text), vocab_size=400)
    save_model(build_tiny_qwen(ModelConfig(), tok), tok, path, step=0, config=dict(max_prompt_tokens=256))
    return path


def test_profiling_resumes_after_an_interrupt_and_lists_every_user(example, tmp_path, monkeypatch):
    d, paths = example
    mub, key = profiling.semantized(paths["events"], d / "sem", SemantizeConfig(as_of="", categories=True,
                                                                               salient=["movies:rating"]), False)
    model = _tiny_model(mub, tmp_path / "model")
    schema, cfg = load_tag_schema(paths["schema"]), EvaluateConfig(samples=2, max_new_tokens=6, batch_users=15)
    whole = profiling.profile_users(mub, model, tmp_path / "whole", schema, cfg, mub_hash=key, progress=False)
    real, calls = profiling.make_backend, []

    def failing(*a, **k):
        backend = real(*a, **k)
        generate = backend.generate

        def once(*ga, **gk):
            calls.append(1)
            if len(calls) == 3: raise KeyboardInterrupt  # the first chunk's two calls finish, the second chunk's not
            return generate(*ga, **gk)
        backend.generate = once
        return backend
    monkeypatch.setattr(profiling, "make_backend", failing)
    with pytest.raises(KeyboardInterrupt):
        profiling.profile_users(mub, model, tmp_path / "cut", schema, cfg, summary=True, mub_hash=key, progress=False)
    assert len(list((tmp_path / "cut" / ".parts").glob("part-*.parquet"))) == 1
    monkeypatch.setattr(profiling, "make_backend", real)
    again = profiling.profile_users(mub, model, tmp_path / "cut", schema, cfg, summary=True, mub_hash=key,
                                    progress=False)
    assert (again["chunks"], again["chunks_resumed"], again["users"]) == (3, 1, 40)
    a = pd.read_parquet(tmp_path / "whole" / "profiles.parquet")
    b = pd.read_parquet(tmp_path / "cut" / "profiles.parquet")
    assert list(a.user_id) == sorted(mub.user_id) and list(b.user_id) == list(a.user_id)
    assert a[schema.ids + ["status"]].equals(b[schema.ids + ["status"]])  # the same answers as without the interrupt
    assert {"summary", "summary_status"} <= set(b.columns)
    unparsed = pd.read_json(tmp_path / "whole" / "unparsed.jsonl", lines=True)
    assert len(unparsed) == (a.status != "ok").sum() == whole["unparsed"]
    assert all(s.startswith("unparsed: ") for s in unparsed.status)
    assert len(pd.read_json(tmp_path / "whole" / "profiles.jsonl", lines=True)) == 40


def test_profile_and_fit_commands(example, tmp_path):
    d, paths = example
    mub = pd.read_parquet(d / "sem" / "mub")
    model = _tiny_model(mub, tmp_path / "model")
    res = run_cli("usergpt-profile", "--events", str(paths["events"]), "--model", str(model), "--out",
                  str(tmp_path / "p"), "--schema", str(paths["schema"]), "--salient", "movies:rating")
    assert "40 users" in res.stdout and (tmp_path / "p" / "profiles.parquet").is_file()
    bad = run_cli("usergpt-profile", "--events", str(paths["events"]), "--out", str(tmp_path / "q"), check=False)
    assert bad.returncode == 2 and "--model DIR" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    labels = pd.read_csv(paths["labels"])
    labels.loc[5, "era"] = "modern"
    labels.to_csv(tmp_path / "labels.csv", index=False)
    bad = run_cli("usergpt-fit", "--events", str(paths["events"]), "--labels", str(tmp_path / "labels.csv"),
                  "--schema", str(paths["schema"]), "--out", str(tmp_path / "f"), check=False)
    assert bad.returncode == 2 and "labels.csv: row 7, field era: 'modern' is not one of classic, recent" in bad.stderr


def test_incremental_profile_updates_the_previous_profiles(example, tmp_path):
    """`--previous`: only the new events are semantized and profiled (into new_events/), and the output holds every
    user of either run, each previous row updated tag by tag (`updated`)."""
    d, paths = example
    model = _tiny_model(pd.read_parquet(d / "sem" / "mub"), tmp_path / "model")
    events = pd.read_json(paths["events"], lines=True)
    history, recent = profiling.split_history(events, 30)
    write_jsonl(history, tmp_path / "history.jsonl")
    write_jsonl(recent[recent.user_id.isin(sorted(recent.user_id.unique())[:10])], tmp_path / "new.jsonl")
    common = ["--model", str(model), "--schema", str(paths["schema"]), "--salient", "movies:rating"]
    run_cli("usergpt-profile", "--events", str(tmp_path / "history.jsonl"), "--out", str(tmp_path / "t0"), *common)
    res = run_cli("usergpt-profile", "--events", str(tmp_path / "new.jsonl"), "--previous", str(tmp_path / "t0"),
                  "--out", str(tmp_path / "t1"), "--max-tokens", "100", *common)
    prev, new = (pd.read_parquet(tmp_path / p / "profiles.parquet") for p in ("t0", "t1/new_events"))
    merged = pd.read_parquet(tmp_path / "t1" / "profiles.parquet")
    assert len(new) == 10 and list(merged.user_id) == list(prev.user_id) == sorted(events.user_id.unique())
    assert "updated 0 of 40 profiles" in res.stdout  # an untrained model's answers never parse: nothing changes
    tags = load_tag_schema(paths["schema"]).ids
    assert merged[tags].equals(prev[tags]) and set(merged.updated) == {"[]"}
    bad = run_cli("usergpt-profile", "--events", str(tmp_path / "new.jsonl"), "--previous", str(tmp_path / "none"),
                  "--out", str(tmp_path / "t2"), *common, check=False)
    assert bad.returncode == 2 and "--previous" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_example_is_deterministic():
    a, la = ratings_log(30, seed=11)
    b, lb = ratings_log(30, seed=11)
    assert a.equals(b) and la.equals(lb) and not a.equals(ratings_log(30, seed=12)[0])


def test_many_light_users_from_jsonl_match_parquet(tmp_path):
    ev, _ = ratings_log(60, seed=3)
    write_jsonl(ev, tmp_path / "e.jsonl")
    ev.assign(attrs=ev["attrs"].map(lambda a: json.dumps(a, sort_keys=True))).to_parquet(tmp_path / "e.parquet")
    cfg = SemantizeConfig(as_of="", categories=True, max_tokens=300, salient=["movies:rating"])
    a = semantize(tmp_path / "e.jsonl", tmp_path / "a", cfg, progress=False)
    b = semantize(tmp_path / "e.parquet", tmp_path / "b", replace(cfg), progress=False)
    assert {k: v for k, v in a["counts"].items() if k != "seconds"} == {k: v for k, v in b["counts"].items()
                                                                         if k != "seconds"}
    assert (pd.read_parquet(tmp_path / "a" / "mub").mub_text.tolist()
            == pd.read_parquet(tmp_path / "b" / "mub").mub_text.tolist())
