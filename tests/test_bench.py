"The frozen HPR-Bench: checksums, disjointness from training users, strata and splits, and the CLI."
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from conftest import run_cli

from usergpt.bench import FROZEN_USERS, assert_disjoint_from_training, frozen_dir, load_bench, verify_bench
from usergpt.config import ConfigError
from usergpt.knowledge import load_knowledge_base


def test_frozen_bench_verifies_and_detects_changes(tmp_path):
    sums = verify_bench()
    assert set(sums) == {"in_domain.parquet", "ood.parquet"}
    copy = tmp_path / "hprbench"
    shutil.copytree(frozen_dir(), copy)
    df = pd.read_parquet(copy / "in_domain.parquet")
    df.loc[0, "gold"] = df.loc[1, "gold"]  # a silent edit of one user's gold tags
    df.to_parquet(copy / "in_domain.parquet", index=False)
    with pytest.raises(ConfigError, match="in_domain.parquet: checksum"):
        verify_bench(copy)
    assert run_cli("usergpt-bench").stdout.startswith("HPR-Bench verified")


def test_splits_are_held_out_and_stratified():
    kb = load_knowledge_base()
    ind, ood = load_bench("in_domain"), load_bench("ood")
    assert len(ind) == len(ood) == FROZEN_USERS
    assert ind.user_id.str.startswith("b").all() and ood.user_id.str.startswith("o").all()
    assert_disjoint_from_training(list(ind.user_id) + list(ood.user_id), seed=0)
    with pytest.raises(AssertionError, match="overlap"):
        assert_disjoint_from_training(["u000007"], seed=0)
    ood_cities = {c.name for c in kb.cities if c.pool == "ood"}
    assert {json.loads(g)["home_city"] for g in ood.gold} <= ood_cities
    assert not {json.loads(g)["home_city"] for g in ind.gold} & ood_cities
    assert ood.noise_share.mean() > 1.5 * ind.noise_share.mean()
    counts = ind.difficulty.value_counts()
    # in-domain: balanced strata
    assert set(counts.index) == {"easy", "medium", "hard"} and counts.min() >= 0.2 * len(ind)
    # OOD: doubled noise leaves few easy users in the pool, so it is harder, but every bucket is represented
    assert set(ood.difficulty) == {"easy", "medium", "hard"}
    assert (ood.difficulty == "hard").mean() > (ind.difficulty == "hard").mean()
    for df in (ind, ood):
        assert df.groupby(["gender", "age_band"]).size().min() >= 10  # every gender x age-band cell is represented
        assert (df.mub_text.str.len() > 0).all() and (df.reference_summary.str.len() > 0).all()


def test_profile_subsets_are_nested_and_stratified():
    small, large = load_bench("in_domain", 40), load_bench("in_domain", 120)
    assert len(small) == 40 and set(small.user_id) <= set(large.user_id)
    assert set(small.difficulty) == {"easy", "medium", "hard"}
