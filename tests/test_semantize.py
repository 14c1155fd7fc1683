"""Semantization as a process: bad input and quarantine, user logs, streaming a huge user, determinism, round trip,
noise filtering."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import run_cli
from hypothesis import given, settings, strategies as st

from usergpt.config import SemantizeConfig, SimulateConfig, dir_content_hash
from usergpt.semantize import MubLine, count_tokens, parse_line, parse_mub, render_line, semantize
from usergpt.simulate import simulate

GOOD = dict(user_id="alice", source="ecommerce", action="purchase",
            entity="【Hot Sale】Pampers Diapers Size M 64pcs Free Shipping", category="diapers", price=99.0)


def _jsonl(path: Path, records: list) -> Path:
    "Write records (dicts, raw strings or raw bytes) as lines."
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for r in records:
            f.write(r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode() + b"\n")
    return path


def test_bad_input_is_quarantined_with_file_row_field_reason(tmp_path):
    src = tmp_path / "logs"
    _jsonl(src / "a.jsonl", [
        dict(GOOD, ts="2026-06-02T09:00:00"),                                   # 1 ok
        '{"user_id": "alice", "ts": "2026-06-02T09:00:00", ',                   # 2 malformed JSON
        dict(GOOD, ts="2026-06-01T09:00:00"),                                   # 3 ok, out of order
        {k: v for k, v in GOOD.items() if k != "source"} | dict(ts="2026-06-01T10:00:00"),  # 4 missing source
        dict(GOOD, ts="not a date"),                                            # 5 unparseable ts
        dict(GOOD, ts="2031-01-01T00:00:00"),                                   # 6 future
        dict(GOOD, ts="2026-06-02T09:00:00"),                                   # 7 exact duplicate of 1
        dict(GOOD, ts="2026-06-03T09:00:00", entity="x" * 1_000_000),           # 8 1 MB entity
        b'{"user_id": "alice", "ts": "2026-06-03T09:00:00", "entity": "\xff\xfe"}\n',  # 9 not UTF-8
        dict(GOOD, user_id="bob", ts="2026-06-03T09:00:00", entity=""),         # 10 bob: nothing valid
        # 11 epoch, user-defined
        dict(GOOD, ts=1780304400, source="MyShop", action="Wishlist", entity="Gift Card", category="vouchers"),
    ])
    out = tmp_path / "out"
    res = run_cli("usergpt-semantize", "--events", str(src), "--out", str(out), "--as-of", "2026-07-01")
    q = [json.loads(l) for l in (out / "quarantine.jsonl").read_text().splitlines()]
    got = {(r["row"], r["field"], r["reason"].split(" (")[0].split(":")[0]) for r in q}
    assert got == {(2, "", "malformed JSON"), (9, "", "not UTF-8 text"),
                   (4, "source", "missing required field `source`"),
                   (5, "ts", "unparseable timestamp"), (6, "ts", "timestamp in the future"),
                   (8, "entity", "entity longer than 512 characters"),
                   (10, "entity", "missing required field `entity`")}
    assert all(r["file"].endswith("a.jsonl") for r in q)
    m = json.loads((out / "manifest.json").read_text())
    c = m["counts"]
    assert (c["read"], c["quarantined"], c["duplicates_dropped"], c["semantized"]) == (11, 7, 1, 3)
    assert c["read"] == c["semantized"] + c["quarantined"] + c["duplicates_dropped"]
    assert c["users_without_valid_events"] == 1 and c["users_with_mub"] == 1
    docs = pd.read_parquet(out / "mub")
    lines = parse_mub(docs.mub_text[0])
    assert [(l.time, l.source, l.action) for l in lines] == [("2026-06-01", "ecommerce", "purchase"),
                                                             ("2026-06-02", "ecommerce", "purchase"),
                                                              ("2026-06-01", "myshop", "wishlist")] or \
           [(l.time, l.source, l.action) for l in lines] == sorted([(l.time, l.source, l.action) for l in lines],
                                                                   key=lambda x: (x[0], x[1] != "ecommerce"))
    assert ("[Source: Myshop]" in docs.mub_text[0] and "Diapers" in docs.mub_text[0]
            and "Hot Sale" not in docs.mub_text[0])
    assert "wrote" in res.stdout


def test_nothing_usable_exits_nonzero(tmp_path):
    src = _jsonl(tmp_path / "bad.jsonl", ['{"broken', dict(GOOD, ts="yesterday")])
    res = run_cli("usergpt-semantize", "--events", str(src), "--out", str(tmp_path / "o"), check=False)
    assert res.returncode == 1 and "no usable events" in res.stderr and "quarantine.jsonl" in res.stderr
    res = run_cli("usergpt-semantize", "--events", str(tmp_path / "missing"), "--out", str(tmp_path / "o2"),
                  check=False)
    assert res.returncode == 2 and "no such file or directory" in res.stderr


def test_jsonl_and_parquet_give_the_same_mub(tmp_path):
    cfg = SimulateConfig(n_users=4, horizon_months=2, users_per_shard=4)
    simulate(cfg, 0, tmp_path / "sim", progress=False)
    events = pd.read_parquet(tmp_path / "sim" / "events")
    jsonl = tmp_path / "as_jsonl" / "events.jsonl"
    jsonl.parent.mkdir()
    events.assign(ts=events.ts.dt.strftime("%Y-%m-%dT%H:%M:%S")).to_json(jsonl, orient="records", lines=True)
    scfg = SemantizeConfig()
    a = semantize(tmp_path / "sim" / "events", tmp_path / "a", scfg, progress=False)
    b = semantize(jsonl, tmp_path / "b", scfg, progress=False)
    assert a["counts"] == {**b["counts"], "seconds": a["counts"]["seconds"]}
    da, db = pd.read_parquet(tmp_path / "a" / "mub"), pd.read_parquet(tmp_path / "b" / "mub")
    assert da.mub_text.tolist() == db.mub_text.tolist() and len(da) == 4


def test_attrs_objects_in_jsonl_read_as_their_sorted_json_text(tmp_path):
    "A log with JSON objects in attrs (Arrow reads a struct) gives the MUB of the same log with attrs as JSON text."
    from usergpt.examples import ratings_log, write_jsonl
    events = ratings_log(n_users=30, seed=1)[0]
    events["attrs"] = pd.Series([{"rating": 5, "seen": "twice"} if i % 7 == 0 else a  # mixed keys
                                 for i, a in enumerate(events["attrs"])], index=events.index, dtype=object)
    jsonl = write_jsonl(events, tmp_path / "events.jsonl")
    text = events.assign(attrs=[json.dumps(a, sort_keys=True, separators=(",", ":")) for a in events["attrs"]])
    text.to_parquet(tmp_path / "events.parquet")
    cfg = SemantizeConfig(salient=["movies:rating"], batch_rows=64)  # many blocks: the schema order carries over
    a = semantize(jsonl, tmp_path / "a", cfg, progress=False)
    b = semantize(tmp_path / "events.parquet", tmp_path / "b", cfg, progress=False)
    assert a["counts"]["quarantined"] == 0 and a["counts"]["read"] == len(events)
    assert a["counts"] == {**b["counts"], "seconds": a["counts"]["seconds"]}
    da, db = pd.read_parquet(tmp_path / "a" / "mub"), pd.read_parquet(tmp_path / "b" / "mub")
    assert len(da) == 30 and "· rating 5" in "".join(da.mub_text)
    for col in ("mub_text", "chars_raw", "events_in_mub"): assert da[col].tolist() == db[col].tolist(), col


def test_semantize_is_deterministic(tmp_path):
    "Same input and settings, same bytes: run twice, and with two worker processes; a budget holds for every user."
    cfg = SimulateConfig(n_users=6, horizon_months=3, users_per_shard=3)
    simulate(cfg, 0, tmp_path / "sim", progress=False)
    for name, workers in (("a", 1), ("b", 1), ("c", 2)):
        semantize(tmp_path / "sim" / "events", tmp_path / name,
                  SemantizeConfig(bucket_rows=1000, workers=workers, categories=True, max_tokens=200), progress=False)
    assert dir_content_hash(tmp_path / "a") == dir_content_hash(tmp_path / "b") == dir_content_hash(tmp_path / "c")
    assert len(list((tmp_path / "a" / "mub").glob("*.parquet"))) > 1  # several partitions were used
    docs = pd.read_parquet(tmp_path / "a" / "mub")
    tokens = count_tokens(docs.mub_text.tolist())
    assert len(docs) == 6 and (tokens <= 200).all() and tokens.max() > 150, tokens  # the budget binds and holds


def test_misclicks_are_filtered_more_than_real_intent(tmp_path):
    cfg = SimulateConfig(n_users=30, horizon_months=2, users_per_shard=30, misclick_rate=0.1)
    simulate(cfg, 0, tmp_path / "sim", progress=False)
    res = semantize(tmp_path / "sim" / "events", tmp_path / "out", SemantizeConfig(), keep_rows=True, progress=False)
    rows, docs = res["rows"], pd.read_parquet(tmp_path / "out" / "mub")
    shown = {(u, l["time"], l["source"], l["action"], e)
             for u, ls in zip(docs.user_id, docs.lines) for l in ls for e in l["entities"]}
    last = rows.groupby("user_id").ts.transform("max")
    clicks = rows[(rows.action == "click") & ((last - rows.ts).dt.days < 29)]
    kept = pd.Series([(u, t.strftime("%Y-%m-%d"), s, "click", c) in shown
                      for u, t, s, c in zip(clicks.user_id, clicks.ts, clicks.source, clicks.core)],
                     index=clicks.index)
    dropped = 1 - kept.groupby(clicks.noise).mean()
    assert dropped["misclick"] > 3 * dropped["none"] and dropped["misclick"] > 0.3, dropped


NAMES = st.lists(st.text(st.characters(blacklist_characters="|[]\n\r×", blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                         min_size=1, max_size=30).map(lambda s: " ".join(s.split())).filter(bool), min_size=1,
                         max_size=6)


@settings(max_examples=200, deadline=None)
@given(source=st.sampled_from(["ecommerce", "delivery", "travel", "poi", "myshop", "app store"]),
       day=st.dates(min_value=pd.Timestamp("2000-01-01").date(), max_value=pd.Timestamp("2099-12-31").date()),
       grain=st.sampled_from([10, 7, 4]), action=st.from_regex(r"[a-z]{1,12}", fullmatch=True),
       count=st.integers(1, 10**7),
       entities=NAMES, categories=st.one_of(st.just([]), NAMES), folded=st.booleans(), data=st.data())
def test_render_parse_round_trip(source, day, grain, action, count, entities, categories, folded, data):
    "Any line reads back as written: classic (entities), or a category distribution and entities with counts folded in."
    counts = lambda names: tuple(data.draw(st.lists(st.integers(1, 999), min_size=len(names), max_size=len(names))))
    ent_counts = counts(entities) if folded else ()
    if ent_counts and all(c == 1 for c in ent_counts): ent_counts = ()  # counts of one are not written
    line = MubLine(source, day.isoformat()[:grain], action, count, tuple(entities), ent_counts,
                   tuple(categories), counts(categories) if categories else ())
    assert parse_line(render_line(line)) == line


def test_a_user_with_a_million_events_streams(tmp_path):
    "1M events of one user: read in batches, one partition in memory; peak memory is printed and bounded."
    n = 1_000_000
    rng = np.random.default_rng(0)
    items = np.array(["Pampers Diapers Size M 64pcs", "Royal Canin Cat Food 2kg", "Apple Smartphone 256GB",
                      "Luckin Coffee - Iced Latte (Large)"], dtype=object)
    k = rng.integers(0, 4, n)
    table = pa.table({"user_id": ["whale"] * n,
                      "ts": pd.Timestamp("2024-07-01") + pd.to_timedelta(np.sort(rng.integers(0, 730 * 86400, n)),
                                                                         unit="s"),
                      "source": np.where(k == 3, "delivery", "ecommerce"),
                      "action": np.where(k == 3, "order", np.where(rng.random(n) < 0.2, "purchase", "click")),
                      "entity": items[k],
                      "category": np.array(["diapers", "cat_supplies", "digital_devices", "milk_tea_coffee"],
                                           dtype=object)[k],
                      "price": rng.random(n) * 100})
    pq.write_table(table, tmp_path / "whale.parquet", row_group_size=100_000)
    code = (f"import resource, json; from usergpt.semantize import semantize; from usergpt.config import "
            f"SemantizeConfig;"
            f"r = semantize('{tmp_path / 'whale.parquet'}', '{tmp_path / 'out'}', SemantizeConfig(), progress=False);"
            f"print(json.dumps(dict(counts=r['counts'], peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // "
            f"1024)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"1M-event user: {out['counts']['seconds']}s, peak memory {out['peak_mb']} MB")
    c = out["counts"]
    assert (c["read"] == n and c["read"] == c["semantized"] + c["quarantined"] + c["duplicates_dropped"]
            and c["users_with_mub"] == 1)
    assert out["peak_mb"] < 4000
    doc = pd.read_parquet(tmp_path / "out" / "mub").iloc[0]
    assert doc.events_in == n - c["duplicates_dropped"] and doc.n_lines > 24 and "[TIME: 2024]" in doc.mub_text


def test_stored_lines_say_what_the_text_says(tmp_path):
    """Every document's stored line metadata reads back from its text, for users whose lines fit the budget whole and
    for users cut to it (the two are assembled differently)."""
    from usergpt.semantize import clean_name
    simulate(SimulateConfig(n_users=8, horizon_months=3, users_per_shard=8), 0, tmp_path / "sim", progress=False)
    docs = {}
    for name in ("whole", "cut"):  # the budget: the median user's whole document
        budget = int(np.median(count_tokens(docs["whole"].mub_text.tolist()))) if docs else 0
        semantize(tmp_path / "sim" / "events", tmp_path / name, SemantizeConfig(categories=True, max_tokens=budget),
                  progress=False)
        docs[name] = pd.read_parquet(tmp_path / name / "mub").set_index("user_id").sort_index()
    same = docs["cut"].mub_text == docs["whole"].mub_text
    assert same.any() and not same.all()  # users whose lines fit whole, and users cut to the budget
    for d in docs.values():
        for text, lines, n_lines, in_mub in zip(d.mub_text, d.lines, d.n_lines, d.events_in_mub):
            parsed = parse_mub(text)
            assert len(parsed) == len(lines) == n_lines and sum(l["count"] for l in lines) == in_mub
            for p, l in zip(parsed, lines):
                ents = tuple(map(clean_name, l["entities"]))
                counts = tuple(l["entity_counts"]) if any(c > 1 for c in l["entity_counts"]) else ()
                assert (p.source, p.time, p.action, p.count) == (l["source"], l["time"], l["action"], l["count"])
                assert (p.entities, p.entity_counts) == (ents, counts)
                assert (p.categories, p.category_counts) == (tuple(l["category_names"]), tuple(l["category_counts"]))
                assert set(l["categories"]) and len(set(l["categories"])) == len(l["categories"])
