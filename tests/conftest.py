"Shared fixtures: paths, a small settings file, and a small simulated population."
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_cli(*args: str, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    "Run one of the package's console scripts in a subprocess."
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def write_settings(path: Path, **overrides: str) -> Path:
    "A copy of the project's settings.ini with [test] overrides."
    text = (ROOT / "settings.ini").read_text()
    text += "\n[test]\n" + "".join(f"{k} = {v}\n" for k, v in overrides.items())
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def small_settings(tmp_path_factory) -> Path:
    "Settings with a [test] profile: 12 users in chunks of 4, two months."
    d = tmp_path_factory.mktemp("settings")
    write_settings(d / "settings.ini", **{"simulate.n_users": "12", "simulate.users_per_shard": "4",
                                          "simulate.horizon_months": "2", "simulate.workers": "1"})
    shutil.copy(ROOT / "pyproject.toml", d / "pyproject.toml")
    return d / "settings.ini"


@pytest.fixture(scope="session")
def population(tmp_path_factory):
    "200 simulated users with 12 months of history, in memory (events, personas)."
    import pandas as pd
    from usergpt.config import SimulateConfig
    from usergpt.simulate import simulate
    out = tmp_path_factory.mktemp("population")
    cfg = SimulateConfig(n_users=200, horizon_months=12, users_per_shard=100, workers=2)
    simulate(cfg, seed=0, out_dir=out, progress=False)
    return cfg, pd.read_parquet(out / "events"), pd.read_parquet(out / "personas")
