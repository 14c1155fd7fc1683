"""Every usage or input error of every usergpt-* command: one line on stderr naming what is wrong, exit code 2, no
traceback."""
from __future__ import annotations

import pytest
from conftest import ROOT, run_cli


def one_line_error(proc, *expected: str) -> None:
    "Exit code 2, one line on stderr containing every `expected` text, and no traceback."
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for text in expected: assert text in lines[0], (text, lines[0])


@pytest.fixture(scope="module")
def bad_settings(tmp_path_factory):
    "A settings file with one broken profile per checked setting."
    d = tmp_path_factory.mktemp("bad")
    text = (ROOT / "settings.ini").read_text()
    for name, key, value in [("negative", "simulate.n_users", "-5"), ("calendar", "simulate.calendar", "lunar"),
                             ("wandb", "train.wandb", "maybe"), ("rate", "simulate.misclick_rate", "1.5"),
                             ("source", "train.label_sources", "legacy, silver"),
                             ("backend", "evaluate.backend", "tgi"),
                             ("topk", "semantize.top_k", "0"), ("typo", "simulate.n_userz", "3")]:
        text += f"\n[{name}]\n{key} = {value}\n"
    (d / "settings.ini").write_text(text)
    (d / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    return d / "settings.ini"


@pytest.mark.parametrize("profile,expected", [
    ("negative", "[negative] simulate.n_users: must be a number ≥ 1, got -5"),
    ("calendar", "[calendar] simulate.calendar: must be one of default, shifted; got 'lunar'"),
    ("wandb", "[wandb] train.wandb: must be one of offline, online, disabled; got 'maybe'"),
    ("rate", "[rate] simulate.misclick_rate: must be a rate in [0, 1], got 1.5"),
    ("source", "[source] train.label_sources: must be a non-empty list of one of legacy, gold"),
    ("backend", "[backend] evaluate.backend: must be one of hf, vllm; got 'tgi'"),
    ("topk", "[topk] semantize.top_k: must be a number ≥ 1, got 0"),
    ("typo", "[typo] simulate.n_userz: unknown key; simulate keys are:"),
])
def test_settings_are_checked_at_load_time(bad_settings, tmp_path, profile, expected):
    for cmd in (["usergpt-simulate", "--out", str(tmp_path / "o")], ["usergpt-reproduce", "--out", str(tmp_path / "o")],
                ["usergpt-train"]):
        one_line_error(run_cli(*cmd, "--profile", profile, "--settings", str(bad_settings), check=False),
                       str(bad_settings),
                       expected)


def test_simulate_usage_errors(tmp_path, small_settings):
    base = ["usergpt-simulate", "--profile", "test", "--settings", str(small_settings), "--out", str(tmp_path / "o")]
    one_line_error(run_cli(*base, "--shard", "5", "--num-shards", "4", check=False), "--shard must be in 0..3", "got 5")
    one_line_error(run_cli(*base, "--num-shards", "0", check=False), "--num-shards must be at least 1, got 0")
    one_line_error(run_cli(*base, "--workers", "0", check=False), "--workers must be at least 1, got 0")
    one_line_error(run_cli(*base, "--workers", "-2", check=False), "--workers must be at least 1, got -2")
    one_line_error(run_cli(*base, "--shard", "two", check=False), "argument --shard: invalid int value: 'two'")
    one_line_error(run_cli("usergpt-simulate", "--profile", "nosuch", "--settings", str(small_settings), check=False),
                   "no profile [nosuch]", "test")
    (tmp_path / "file").write_text("x")
    one_line_error(run_cli("usergpt-simulate", "--profile", "test", "--settings", str(small_settings), "--out",
                           str(tmp_path / "file"), check=False), "--out", "exists and is not a directory")
    assert not (tmp_path / "o").exists()  # nothing was written for any usage error


def test_semantize_usage_errors(tmp_path):
    (tmp_path / "events.csv").write_text("user_id,ts,source,action,entity\na,2026-01-01,ecommerce,click,x\n")
    one_line_error(run_cli("usergpt-semantize", "--events", str(tmp_path / "events.csv"), "--out", str(tmp_path / "o"),
                           check=False), "events.csv", ".csv files are not supported", "JSONL", "Parquet")
    (tmp_path / "events.jsonl").write_text('{"user_id": "a", "ts": "2026-01-01", "source": "ecommerce", '
                                           '"action": "click", '
                                           '"entity": "x"}\n')
    (tmp_path / "taken").write_text("a file")
    one_line_error(run_cli("usergpt-semantize", "--events", str(tmp_path / "events.jsonl"), "--out",
                           str(tmp_path / "taken"),
                           check=False), "--out", "exists and is not a directory")
    one_line_error(run_cli("usergpt-semantize", "--out", str(tmp_path / "o"), check=False),
                   "--events PATH and --out DIR are required")
    one_line_error(run_cli("usergpt-semantize", "--events", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"),
                           check=False),
                   "no such file or directory")
    one_line_error(run_cli("usergpt-semantize", "--events", str(tmp_path / "events.jsonl"), "--out",
                           str(tmp_path / "o"),
                           "--as-of", "soon", check=False), "--as-of: must be empty or an ISO date/time")
    one_line_error(run_cli("usergpt-semantize", "--events", str(tmp_path / "events.jsonl"), "--out",
                           str(tmp_path / "o"), "--salient", "movies", check=False),
                   "--salient: each item is `source:field`")
    one_line_error(run_cli("usergpt-semantize", "--events", str(tmp_path / "events.jsonl"), "--out",
                           str(tmp_path / "o"), "--high-impact", "shop:", check=False),
                   "--high-impact: each item is `source:action`")
    one_line_error(run_cli("usergpt-semantize", "--events", str(tmp_path / "events.jsonl"), "--frobnicate",
                           check=False),
                   "unrecognized arguments: --frobnicate")
    assert not (tmp_path / "o").exists()


def test_reproduce_bench_and_train_usage_errors(tmp_path):
    one_line_error(run_cli("usergpt-reproduce", "--profile", "smoke", "--stages", "simulate,trainn", "--out",
                           str(tmp_path),
                           check=False), "unknown stages ['trainn']", "knowledge, simulate")
    one_line_error(run_cli("usergpt-reproduce", "--profile", "nope", "--out", str(tmp_path), check=False),
                   "no profile [nope]", "smoke")
    one_line_error(run_cli("usergpt-reproduce", "--settings", str(tmp_path / "none.ini"), check=False),
                   "none.ini does not exist")
    one_line_error(run_cli("usergpt-bench", "--build", str(tmp_path / "b"), "--users", "0", check=False),
                   "--users must be at least 1, got 0")
    one_line_error(run_cli("usergpt-train", "--profile", "smoke", "--out", str(tmp_path), check=False),
                   "semantize: no complete output", "rerun: usergpt-reproduce --stages semantize")


def test_an_unreadable_parquet_file_is_an_input_error(tmp_path):
    bad = tmp_path / "events.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    one_line_error(run_cli("usergpt-semantize", "--events", str(bad), "--out", str(tmp_path / "o"), check=False),
                   "events.parquet: not a readable Parquet file")
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))  # and nothing half-written was left


def test_example_fit_and_profile_usage_errors(tmp_path):
    one_line_error(run_cli("usergpt-example", check=False), "--out DIR is required")
    one_line_error(run_cli("usergpt-fit", "--events", "x.jsonl", check=False),
                   "--events PATH, --labels CSV, --schema YAML and --out DIR are required")
    one_line_error(run_cli("usergpt-profile", "--events", "x.jsonl", "--model", str(tmp_path), "--out",
                           str(tmp_path / "o"), check=False), "--model", "not a model directory")
    assert not (tmp_path / "o").exists()
