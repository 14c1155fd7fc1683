"""Metrics on hand-computed cases: Avg@k / Pass@k, per-dimension grouping, malformed output, Acc_Ex / COV_Ex, the
judge's formulas, and paired bootstrap intervals of differences between systems."""
from __future__ import annotations

import json

import numpy as np
import pytest

from usergpt.knowledge import load_knowledge_base
from usergpt.metrics import (LexiconExtractor, RuleJudge, correctness, extraction_counts, mean_difference,
                             paired_interval, parse_output, ratio_difference, summary_scores, tag_scores)

KB = load_knowledge_base()
SCHEMA = KB.schema
EXTRACTOR = LexiconExtractor(SCHEMA, list(KB.priors["interests"]))


def gold(**over):
    g = {t.id: (t.values[0] if t.kind == "categorical" else ["tea"]) for t in SCHEMA.tags}
    return {**g, **over}


def answer(d: dict) -> str:
    return "<think>evidence</think><answer>" + json.dumps(d) + "</answer>"


def test_avg_and_pass_at_k_by_hand():
    g1, g2 = gold(), gold(pet="dog")
    # user 1: samples right on everything / wrong on gender only; user 2: wrong pet in both samples
    outs = [[answer(g1), answer({**g1, "gender": "male"})], [answer(gold()), answer(gold())]]
    c, fails = correctness(outs, [g1, g2], SCHEMA)
    s = tag_scores(c, SCHEMA)
    # 36 questions; per-question means: user 1 gender 0.5, user 2 pet 0.0, all else 1.0
    assert s["Avg"]["avg"] == pytest.approx((34 + 0.5) / 36) and s["Avg"]["pass_at_k"] == pytest.approx(35 / 36)
    assert s["LS"]["avg"] == pytest.approx((8 - 0.5) / 8) and s["HC"]["avg"] == pytest.approx(7 / 8)
    assert s["per_tag"]["gender"]["pass_at_k"] == 1.0 and s["per_tag"]["pet"]["pass_at_k"] == 0.5
    assert sum(fails.values()) == 0


def test_malformed_outputs_score_zero_and_are_counted():
    g = gold()
    outs = [[None, "", "plain text", "<answer>{oops</answer>", "<think>cut off",
             answer({"gender": "female", "shoe_size": 42, "pet": "parrot"})]]
    c, fails = correctness(outs, [g], SCHEMA)
    assert c[0, :, :5].sum() == 0
    assert c[0, SCHEMA.ids.index("gender"), 5] and not c[0, SCHEMA.ids.index("pet"), 5]
    assert (fails["empty"], fails["no_answer_tag"], fails["bad_json"], fails["truncated"], fails["unknown_tag"],
            fails["invalid_value"]) == (2, 1, 1, 1, 1, 1)


def test_na_counts_as_incorrect():
    c, _ = correctness([[{**gold(), "parenting": "NA"}]], [gold()], SCHEMA)
    assert not c[0, SCHEMA.ids.index("parenting"), 0]
    # NA is valid output, just not correct
    assert parse_output(answer({"parenting": "NA"}), SCHEMA).answer == {"parenting": "NA"}


def test_acc_ex_and_cov_ex_by_hand():
    g = gold(gender="female", pet="dog")
    # the extractor finds gender (right) and pet (wrong: a cat), nothing else
    s = summary_scores(["She keeps a cat."], [g], ["She keeps a dog."], EXTRACTOR, SCHEMA)
    assert s["Acc_Ex"] == pytest.approx(1 / 2) and s["COV_Ex"] == pytest.approx(2 / 18)
    assert summary_scores([""], [g], ["She keeps a dog."], EXTRACTOR, SCHEMA)["COV_Ex"] == 0.0


def test_judge_formulas():
    judge = RuleJudge(EXTRACTOR, SCHEMA)
    words = lambda n: " ".join(["Word"] * (n - 1)) + " end."
    assert judge.score(words(20), gold())["conciseness"] == pytest.approx(5.0)    # 20/40 of the way up
    assert judge.score(words(100), gold())["conciseness"] == pytest.approx(10.0)
    assert judge.score(words(280), gold())["conciseness"] == pytest.approx(5.0)   # (400-280)/240
    # repeated clauses count once: 8 copies of a 5-word clause are 5 words, 8 different ones 40
    assert judge.score(", ".join(["She likes food and travel"] * 8) + ".", gold())["conciseness"] == pytest.approx(1.25)
    assert judge.score(", ".join(f"She likes food number {i}" for i in range(8)) + ".",
                       gold())["conciseness"] == pytest.approx(10.0)
    a = judge.score("A married woman. A married woman.", gold(gender="female", marital_status="married"))
    # sentences of 3 words (too short), one repeat, proper shape, no markup: (0 + 0.5 + 1 + 1) / 4
    assert (a["aesthetics"] == pytest.approx(10 * 2.5 / 4) and a["consistency"] == pytest.approx(10.0)
            and a["completeness"] == pytest.approx(10 * 2 / 18))


def test_extraction_counts_pool_to_acc_ex():
    g = gold(gender="female", pet="dog")
    texts = ["She keeps a cat.", "", "A woman."]
    right, found = extraction_counts(texts, [g] * 3, EXTRACTOR, SCHEMA)
    assert right.tolist() == [1, 0, 1] and found.tolist() == [2, 0, 1]
    s = summary_scores(texts, [g] * 3, ["x"] * 3, EXTRACTOR, SCHEMA)
    assert s["Acc_Ex"] == pytest.approx(right.sum() / found.sum())
    # counts passed in are the ones scored: nothing is extracted again
    assert summary_scores(texts, [g] * 3, ["x"] * 3, EXTRACTOR, SCHEMA, (right, found)) == s
    given = summary_scores(texts, [g] * 3, ["x"] * 3, EXTRACTOR, SCHEMA, ([0, 0, 0], [1, 0, 1]))
    assert given["Acc_Ex"] == 0.0 and given["COV_Ex"] == pytest.approx(2 / (3 * len(SCHEMA.tags)))


def test_paired_interval_resamples_users_together():
    rng = np.random.default_rng(1)
    a = rng.random(50)
    # a shift every user shares is resolved exactly, however noisy the users are
    iv = paired_interval(mean_difference, a + 0.05, a)
    assert iv["value"] == pytest.approx(0.05) and iv["low"] == pytest.approx(0.05) == iv["high"]
    # unpaired resampling would see the users' spread (sd 0.29) and give an interval of about ±0.11
    iv = paired_interval(mean_difference, a + 0.05 + rng.normal(0, 0.01, 50), a)
    assert 0.04 < iv["low"] < iv["value"] < iv["high"] < 0.06
    # the same seed gives the same interval; a difference of noise holds 0
    noise = rng.normal(0, 1, 100), rng.normal(0, 1, 100)
    assert paired_interval(mean_difference, *noise, seed=3) == paired_interval(mean_difference, *noise, seed=3)
    iv = paired_interval(mean_difference, *noise)
    assert iv["low"] < 0 < iv["high"]


def test_ratio_difference_pools_over_users():
    # Acc_Ex pools right / extracted over the users: (1+3)/(2+4) − (2+0)/(2+2), not a mean of per-user ratios
    assert ratio_difference([1, 3], [2, 4], [2, 0], [2, 2]) == pytest.approx(4 / 6 - 2 / 4)
    assert ratio_difference([0], [0], [1], [2]) == pytest.approx(-0.5)  # nothing extracted: Acc_Ex 0
    with pytest.raises(ValueError, match="differ in length"):
        paired_interval(mean_difference, [1, 2, 3], [1, 2])
