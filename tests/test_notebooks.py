"Every notebook in nbs/ runs top to bottom (its checks are its tests), reported one test per notebook."
from __future__ import annotations

from pathlib import Path

import pytest
from nbdev.test import test_nb as run_notebook_checks

NBS = Path(__file__).resolve().parent.parent / "nbs"
NOTEBOOKS = sorted(p.name for p in NBS.glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook(name, monkeypatch):
    monkeypatch.chdir(NBS)
    ok, seconds = run_notebook_checks(NBS / name, skip_flags=["slow", "gpu"], showerr=True, basepath=NBS.parent)
    assert ok, f"{name} failed (see the traceback above)"
