"""Killing a data stage's command mid-write (SIGINT, SIGTERM, SIGKILL) leaves the previous complete output intact and
nothing that looks complete."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from conftest import BIN, ROOT, run_cli, write_settings

from usergpt.config import StageOutputError, verify_stage


@pytest.fixture(scope="module")
def kill_settings(tmp_path_factory):
    """[test]: 12 small users for the previous output; [kill]: a run slow enough to interrupt (many small shards and
    partitions)."""
    d = tmp_path_factory.mktemp("kill")
    path = write_settings(d / "settings.ini", **{"simulate.n_users": "12", "simulate.users_per_shard": "4",
                                                  "simulate.horizon_months": "2", "simulate.workers": "1"})
    path.write_text(path.read_text() + "\n[kill]\nsimulate.n_users = 240\n"
                                       "simulate.users_per_shard = 4\nsimulate.horizon_months = 12\n"
                    "simulate.workers = 2\nsemantize.bucket_rows = 40000\nsemantize.batch_rows = 20000\n")
    (d / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    # input for the semantize runs
    run_cli("usergpt-simulate", "--profile", "kill", "--settings", str(path), "--out", str(d / "big"))
    return path


def _interruptible():
    "Ctrl-C as in a terminal: a shell starts background jobs with SIGINT ignored, and children inherit that."
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kill_when(cmd: list[str], ready, sig: signal.Signals, timeout: float = 300) -> subprocess.CompletedProcess:
    "Start `cmd`, send `sig` once `ready()` holds, and return the finished process; fail if it finished first."
    proc = subprocess.Popen([str(BIN / cmd[0]), *cmd[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible)
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, f"{cmd[0]} finished before it could be interrupted:\n{proc.stderr.read()}"
        assert time.time() - t0 < timeout, "never reached the point to interrupt"
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _check_outcome(res, sig, out, previous: dict) -> None:
    """The previous output is intact and verified; a catchable signal ends in one line, exit 130, and no temporary left
    behind."""
    if sig == signal.SIGKILL:
        assert res.returncode == -9
    else:
        assert res.returncode == 130 and "Traceback" not in res.stderr, res.stderr
        last = res.stderr.strip().splitlines()[-1]
        assert last.endswith("interrupted; nothing half-written was left (the previous output, if any, is unchanged)")
        assert not list(out.parent.glob(f".{out.name}.*")), "temporary directories left behind"
    # verify_stage also clears what a hard kill left
    assert verify_stage(out)["content_hash"] == previous["content_hash"]
    assert not list(out.parent.glob(f".{out.name}.*"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_simulate_interrupted_mid_write(tmp_path, kill_settings, sig):
    out = tmp_path / "sim"
    run_cli("usergpt-simulate", "--profile", "test", "--settings", str(kill_settings), "--out", str(out))
    previous = json.loads((out / "manifest.json").read_text())
    res = _kill_when(["usergpt-simulate", "--profile", "kill", "--settings", str(kill_settings), "--out", str(out)],
                     lambda: len(list(tmp_path.glob(".sim.tmp-*/events/part-*.parquet"))) >= 3, sig)
    _check_outcome(res, sig, out, previous)
    assert previous["row_counts"]["users"] == 12


@pytest.mark.parametrize("phase", ["reading", "writing"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_semantize_interrupted(tmp_path, kill_settings, sig, phase):
    big, out = kill_settings.parent / "big" / "events", tmp_path / "mub"
    small = tmp_path / "small"
    run_cli("usergpt-simulate", "--profile", "test", "--settings", str(kill_settings), "--out", str(small))
    run_cli("usergpt-semantize", "--events", str(small / "events"), "--out", str(out), "--profile", "kill",
            "--settings",
            str(kill_settings))
    previous = json.loads((out / "manifest.json").read_text())
    ready = {"reading": lambda: len(list(tmp_path.glob(".mub.tmp-*/.buckets/b*/*.parquet"))) >= 2,
             "writing": lambda: len(list(tmp_path.glob(".mub.tmp-*/mub/part-*.parquet"))) >= 2}[phase]
    res = _kill_when(["usergpt-semantize", "--events", str(big), "--out", str(out), "--profile", "kill", "--settings",
                      str(kill_settings)], ready, sig)
    _check_outcome(res, sig, out, previous)
    assert previous["row_counts"]["users"] == 12


def test_a_half_written_directory_is_refused(tmp_path, kill_settings):
    """A directory whose files no longer match its manifest (a write that did not go through the protocol) is refused by
    the loaders."""
    out = tmp_path / "sim"
    run_cli("usergpt-simulate", "--profile", "test", "--settings", str(kill_settings), "--out", str(out))
    next(iter(sorted((out / "events").glob("part-*.parquet")))).unlink()
    from usergpt.simulate import load_simulation
    with pytest.raises(StageOutputError,
                       match="differ from its manifest.json .changed or half-written.; rerun: usergpt-reproduce"):
        load_simulation(out, "personas")
