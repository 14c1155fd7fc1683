"""The teacher panel and its vote: exact stage assignment from hand-made answers, the low-entropy filter, Stage 2's
re-synthesis, aggregation, and the DNN on masked curriculum labels."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from usergpt.baselines import dnn_predictor, legacy_labels
from usergpt.config import ConfigError, TeachersConfig
from usergpt.knowledge import TagSchema, load_knowledge_base
from usergpt.teachers import (KnowledgeTeacher, RuleTeacher, SeedTeacher, _questions, aggregate, agreement,
                              apply_low_entropy, assign_stages, curriculum_labels, expert_split, resynthesise)

SCHEMA = load_knowledge_base().schema
TWO = TagSchema(tags=tuple(t for t in SCHEMA.tags if t.id in ("gender", "pet")), dimensions=SCHEMA.dimensions)
DOC = "\n".join(["[Source: E-commerce] [TIME: 2025] [TYPE: Purchase] [COUNT: 30] | Cat Litter, Lipstick",
                 "[Source: E-commerce] [TIME: 2026-05] [TYPE: Purchase] [COUNT: 6] | Razor Blades",
                 "[Source: E-commerce] [TIME: 2026-06-21] [TYPE: Purchase] [COUNT: 4] | Maternity Dress"])


def test_vote_assigns_exact_stages_from_hand_made_answers():
    "Five teachers on two users: 5, 4, 3, 1 and 0 agreeing answers land in Stage 1, 1, 2, 2 and dropped."
    labels = [{"gender": "female", "pet": "cat"}, {"gender": "male", "pet": "none"}]
    def panel(*rows):  # rows: per teacher, ((gender u1, pet u1), (gender u2, pet u2))
        return [[{"gender": g, "pet": p} for g, p in row] for row in rows]
    answers = panel((("female", "cat"), ("male", "dog")),
                    (("female", "cat"), ("male", "dog")),
                    (("female", "cat"), ("male", "none")),
                    (("female", "dog"), ("female", "dog")),
                    (("male", "dog"), ("female", "dog")))
    agree = agreement(answers, labels, TWO)
    assert agree.shape == (5, 2, 2)
    assert agree.sum(axis=0).tolist() == [[4, 3], [3, 1]]
    assert assign_stages(agree, 4).tolist() == [[1, 2], [2, 2]]
    assert assign_stages(agree, 3).tolist() == [[1, 1], [1, 2]]
    nobody = panel(*[(("male", "dog"), ("female", "cat"))] * 5)
    assert assign_stages(agreement(nobody, labels, TWO), 4).tolist() == [[0, 0], [0, 0]]


def test_open_tag_agreement_is_scored_like_the_bench():
    "interests agree by MiniLM similarity: a synonym-free exact list agrees, an unrelated one does not."
    one = TagSchema(tags=(SCHEMA["interests"],), dimensions=SCHEMA.dimensions)
    labels = [{"interests": ["photography", "hiking"]}]
    agree = agreement([[{"interests": ["hiking", "photography"]}], [{"interests": ["video games"]}]], labels, one)
    assert agree[:, 0, 0].tolist() == [True, False]


def test_questions_record_stage_reason_and_rationale():
    "The question table: Stage 1 kept, Stage 2 kept with evidence or dropped without, no agreement dropped."
    pool = pd.DataFrame({"user_id": ["u1"], "mub_text": [DOC]})
    pseudo = [{"gender": "female", "pet": "none"}]
    agree = np.array([[[1, 1]], [[1, 0]], [[1, 0]], [[1, 0]], [[0, 0]]], dtype=bool)
    q = _questions(pool, pseudo, agree, [{"gender": "female", "pet": "cat"}], 4, TWO)
    assert q.reason.tolist() == ["stage 1", "stage 2: no rationale"]  # pet = none, but cat behaviour is shown
    assert q.kept.tolist() == [True, False] and q.agree.tolist() == [4, 1] and q.stage.tolist() == [1, 2]
    q2 = _questions(pool, [{"gender": "female", "pet": "cat"}], agree, [{"gender": "male", "pet": "none"}], 4, TWO)
    assert q2.reason.tolist() == ["stage 1", "stage 2: evidence"]
    assert q2.rationale.tolist() == ["", "pet: Cat Litter [2025]"]
    assert curriculum_labels(q, ["u1"], TWO) == [{"gender": "female", "pet": None}]


def test_resynthesis_needs_dominant_evidence_the_defaults_absence_or_the_strongest_teacher():
    assert resynthesise(DOC, "pet", "cat", "none") == (True, "pet: Cat Litter [2025]")
    assert resynthesise(DOC, "pet", "dog", "dog") == (False, "")  # no dog behaviour: the strong answer is no reason
    assert resynthesise(DOC, "fitness", "none", "casual") == (True, "fitness: no enthusiast or casual behaviour")
    # evidence must outweigh the other values': 30 lipstick-and-litter events against 6 razor blades
    assert resynthesise(DOC, "gender", "female", "male") == (True, "gender: Lipstick [2025]")
    assert resynthesise(DOC, "gender", "male", "male") == (False, "")
    # early_career, mid_career and retired all lack evidence of their own: absence of `student` decides nothing
    assert resynthesise(DOC, "life_phase", "mid_career", "mid_career") == (False, "")
    # no knowledge-base evidence for household_size: the strongest teacher's own answer decides
    assert resynthesise(DOC, "household_size", "3-4", "3-4") == (True, "")
    assert resynthesise(DOC, "household_size", "3-4", "2") == (False, "")
    assert resynthesise(DOC, "home_city", "Chengdu", "Chengdu") == (False, "")  # no place shown
    places = DOC + "\n[Source: POI] [TIME: 2026-06-22] [TYPE: Visit] [COUNT: 3] | Super Monkey (Gym) @ Chengdu"
    assert resynthesise(places, "home_city", "Chengdu", "Wuhan")[0]


def test_low_entropy_filter_drops_exactly_what_every_sample_answers_like_the_label():
    q = pd.DataFrame(dict(user_id=["u1", "u1", "u2", "u2"], tag=["gender", "pet"] * 2,
                          label=['"female"', '"cat"', '"male"', '"none"'], agree=[5, 2, 5, 0], stage=[1, 2, 1, 0],
                          reason=["stage 1", "stage 2: evidence", "stage 1", "no teacher agrees"],
                          rationale=["", "pet: Cat Litter [2025]", "", ""], kept=[True, True, True, False]))
    labels = [{"gender": "female", "pet": "cat"}, {"gender": "male", "pet": "none"}]
    samples = [[{"gender": "female", "pet": "cat"}, {"gender": "female", "pet": None}],  # u1: gender 2/2, pet 1/2
               [{"gender": "male", "pet": "none"}, {"gender": "male", "pet": "none"}]]   # u2: both 2/2
    out = apply_low_entropy(q, samples, ["u1", "u2"], labels, TWO)
    assert out.kept.tolist() == [False, True, False, False]
    assert out.reason.tolist() == ["low entropy", "stage 2: evidence", "low entropy", "no teacher agrees"]
    only_u1 = apply_low_entropy(q, samples[:1], ["u1"], labels[:1], TWO)  # users not sampled are not filtered
    assert only_u1.kept.tolist() == [False, True, True, False]
    assert q.kept.tolist() == [True, True, True, False]  # the input is not modified


def test_aggregation_vote_and_dawid_skene():
    "Plurality vote with ties to the first annotator; Dawid-Skene discounts an annotator that is always wrong."
    users = [f"u{i}" for i in range(40)]
    truth = ["cat" if i % 2 else "dog" for i in range(40)]
    flip = {"cat": "dog", "dog": "cat"}
    answers = {"good1": [{"pet": v} for v in truth], "good2": [{"pet": v} for v in truth],
               "bad": [{"pet": flip[v]} for v in truth], "none": [{"pet": None} for _ in truth]}
    agg = aggregate(answers, "pet", users)
    assert agg.vote.tolist() == truth and agg.ds.tolist() == truth
    tie = aggregate({"a": [{"pet": "cat"}], "b": [{"pet": "dog"}]}, "pet", ["u"])
    assert tie.vote.tolist() == ["cat"]


def test_teachers_read_only_the_text_and_differ():
    "Rule variants read different windows; the knowledge prior answers every tag from text alone."
    yearly, recent = RuleTeacher("y", (0,)).answer([DOC])[0], RuleTeacher("r", (1, 2)).answer([DOC])[0]
    assert yearly["pet"] == "cat" and recent["pet"] == "none" and recent["parenting"] == "expecting"
    assert RuleTeacher("all").answer([DOC])[0] == legacy_labels(DOC)
    k = KnowledgeTeacher().answer([DOC, ""])
    assert list(k[0]) == SCHEMA.ids and k[0]["pet"] == "cat" and k[1]["pet"] == "none"
    assert k[0]["income_band"] in SCHEMA["income_band"].values


def test_seed_teacher_cross_answers_hold_every_user_out():
    docs = [f"[Source: E-commerce] [TIME: 2026-06-0{i % 9 + 1}] [TYPE: Purchase] [COUNT: 5] | "
            f"{('Dog', 'Cat')[i % 2]} Food" for i in range(30)]
    labs = [{**{t.id: (t.values[0] if t.kind == "categorical" else ["tea"]) for t in SCHEMA.tags},
             "pet": "cat" if i % 2 else "dog"} for i in range(30)]
    teacher = SeedTeacher("seed", "logreg", docs, labs)
    cross = teacher.cross_answers(folds=5)
    assert len(cross) == 30 and all(a is not None for a in cross)
    assert [a["pet"] for a in cross] == [l["pet"] for l in labs]  # a plain signal generalises across folds
    with pytest.raises(ConfigError, match="unknown kind"):
        SeedTeacher("x", "forest", docs, labs).answer(docs)


def test_dnn_learns_from_masked_curriculum_labels():
    "A None label is out of the loss: the DNN still learns pet when a third of the users have none."
    docs = [f"[Source: E-commerce] [TIME: 2026-06-0{i % 9 + 1}] [TYPE: Purchase] [COUNT: 5] | "
            f"{('Dog', 'Cat')[i % 2]} Food" for i in range(40)]
    labs = [{**{t.id: (t.values[0] if t.kind == "categorical" else ["tea"]) for t in SCHEMA.tags},
             "pet": None if i % 3 == 0 else ("cat" if i % 2 else "dog"),
             "interests": None if i % 4 == 0 else ["tea"]} for i in range(40)]
    pred = dnn_predictor(docs, labs, epochs=40)(docs[:4])
    assert [p["pet"] for p in pred] == ["dog", "cat", "dog", "cat"] and pred[0]["interests"] == ["tea"]


def test_expert_seed_is_deterministic_and_config_is_validated():
    ids = [f"u{i:05d}" for i in range(100)]
    a, b = expert_split(ids, 20, 0), expert_split(ids, 20, 0)
    assert a.sum() == 20 and (a == b).all() and not (a == expert_split(ids, 20, 1)).all()
    with pytest.raises(ConfigError, match="expert_users: must be a number ≥ 10"):
        TeachersConfig(expert_users=3)
    with pytest.raises(ConfigError, match="stage1_min"):
        TeachersConfig(stage1_min=0)
    assert json.dumps(TeachersConfig().models) == "[]"
