"""Curriculum SFT data: targets that train on some tags only, token-level loss masks, the template summary and its
extraction check, and the stage datasets."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from usergpt.config import ConfigError, CurriculumConfig, load_profile
from usergpt.curriculum import (answer_spans, persona_summary, stage_datasets, stage_rows, summary_agrees,
                                tags_target, tokenize_masked)
from usergpt.knowledge import load_knowledge_base
from usergpt.metrics import LexiconExtractor
from usergpt.model import mub_lines, train_tokenizer
from usergpt.train import target_text

KB = load_knowledge_base()
SCHEMA = KB.schema
DOC = "\n".join(["[Source: E-commerce] [TIME: 2025] [TYPE: Purchase] [COUNT: 30] | Cat Litter, Lipstick",
                 "[Source: E-commerce] [TIME: 2026-06-21] [TYPE: Purchase] [COUNT: 4] | Maternity Dress"])
GOLD = {"gender": "female", "age_band": "25-34", "marital_status": "married", "life_phase": "early_career",
        "parenting": "expecting", "household_size": "2", "pet": "cat", "housing": "renter", "consumption_level": "mid",
        "fitness": "casual", "travel_frequency": "occasional", "interests": ["photography", "hiking"],
        "education": "bachelor", "occupation": "office_worker", "income_band": "middle", "home_city": "Chengdu",
        "city_tier": "tier2", "recently_relocated": "no"}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = [DOC, json.dumps(GOLD), "<think></think><answer></answer>"] * 20
    return train_tokenizer(texts, vocab_size=400, out_dir=tmp_path_factory.mktemp("tok"))


def test_masked_target_trains_only_the_named_tags(tokenizer):
    completion, masked = tags_target(mub_lines(DOC), GOLD, ["pet", "parenting"])
    answer = completion[completion.index("<answer>") + 8:completion.index("</answer>")]
    assert json.loads(answer) == GOLD  # the answer still holds every tag
    assert sorted(completion[a:b] for a, b in masked) == sorted(
        json.dumps(v, ensure_ascii=False, separators=(",", ":")) for t, v in GOLD.items()
        if t not in ("pet", "parenting"))
    assert "pet: Cat Litter [2025]" in completion and "parenting: Maternity Dress" in completion
    prompt = "Behaviour:\n" + DOC + "\n"
    ex = tokenize_masked(prompt, completion, masked, tokenizer)
    ids, labels = ex["input_ids"], ex["labels"]
    assert len(ids) == len(labels)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert all(x == -100 for x in labels[:n_prompt])  # no loss on the prompt
    trained = tokenizer.decode([t for t, l in zip(ids, labels) if l != -100])
    assert '"cat"' in trained.replace(" ", "") and '"expecting"' in trained.replace(" ", "")
    assert '"female"' not in trained.replace(" ", "") and "photography" not in trained  # masked values
    assert '"gender"' in trained.replace(" ", "")  # keys stay in the loss: the answer's shape is always taught
    assert labels[-1] == ids[-1] == tokenizer.eos_token_id  # it learns to stop
    unmasked = tokenize_masked(prompt, completion, [], tokenizer)
    assert unmasked["input_ids"] == ids and sum(l != -100 for l in unmasked["labels"]) > sum(l != -100 for l in labels)


def test_unmasked_target_is_the_sft_v0_completion():
    "Every tag trained, no notes: SFT v0's own completion, its evidence cited in the labels' order, not the caller's."
    lines = mub_lines(DOC)
    assert tags_target(lines, GOLD, list(GOLD)[::-1], 3) == (target_text(lines, GOLD, 3), [])
    # a subset of tags trained: the same completion, only the other tags' values masked
    completion, masked = tags_target(lines, GOLD, ["pet", "parenting"], 3)
    assert completion == target_text(lines, GOLD, 3) and len(masked) == len(GOLD) - 2


def test_answer_spans_match_the_sft_answer():
    text, spans = answer_spans(GOLD)
    assert text == json.dumps(GOLD, ensure_ascii=False, separators=(",", ":"))
    assert {t: json.loads(text[a:b]) for t, (a, b) in spans.items()} == GOLD


def test_template_summary_round_trips_through_the_extractor():
    extractor = LexiconExtractor(SCHEMA, list(KB.priors["interests"]))
    summary = persona_summary(GOLD, SCHEMA)
    assert extractor.extract(summary) == GOLD
    assert summary.count(".") == len(SCHEMA.dimensions) and summary.startswith("Life stage: ")
    partial = {**GOLD, "pet": None, "income_band": "NA"}
    assert "a cat" not in persona_summary(partial, SCHEMA) and summary_agrees(persona_summary(partial, SCHEMA), partial,
                                                                             extractor, SCHEMA)
    assert not summary_agrees(summary, partial, extractor, SCHEMA)  # states tags that are not labels
    assert not summary_agrees(summary, {**GOLD, "pet": "dog"}, extractor, SCHEMA)


NOTE = "pet: buys cat litter every month"


def test_stage_rows_follow_the_questions(tokenizer):
    "Stage 1 trains the Stage-1 tags, Stage 2 the kept disputed ones with their rationale, Stage 3 the summary."
    prof = load_profile("smoke")
    stored = lambda labels: json.dumps(labels, sort_keys=True)  # as the pipeline stores labels
    pool = pd.DataFrame({"user_id": ["u1", "u2"], "mub_text": [DOC, DOC],
                         "labels": [stored(GOLD), stored({**GOLD, "pet": "dog"})]})
    rows = []
    for u in ("u1", "u2"):
        for t in SCHEMA.ids:
            stage = 2 if t == "pet" else (1 if u == "u1" else 0)
            kept = stage == 1 or (stage == 2 and u == "u1")
            rows.append((u, t, json.dumps(GOLD[t]), 4, stage, "x", NOTE if t == "pet" else "", kept))
    q = pd.DataFrame(rows, columns=["user_id", "tag", "label", "agree", "stage", "reason", "rationale", "kept"])
    out = stage_rows(pool, q, tokenizer, SCHEMA, prof, LexiconExtractor(SCHEMA, list(KB.priors["interests"])))
    assert out["stage1"]["user_id"] == ["u1"] and out["stage2"]["user_id"] == ["u1"]  # u2: nothing kept
    assert out["stage3"]["user_id"] == ["u1"] and out["summaries_rejected"] == 0
    # SFT v0's completion (every line shown): the stored labels (keys sorted) in the schema's order, gender first
    v0 = target_text(mub_lines(DOC), GOLD, prof.train.rationale_items)
    assert out["stage1"]["completion"][0] == v0
    assert "pet: Cat Litter [2025]" in v0 and NOTE not in v0  # the disputed tag's rationale stands in its evidence
    assert out["stage2"]["completion"][0] == v0.replace("pet: Cat Litter [2025]", NOTE)
    summary = json.loads(out["stage3"]["completion"][0].split("<answer>")[1].split("</answer>")[0])["summary"]
    assert summary == persona_summary(GOLD, SCHEMA)
    s2 = out["stage2"]["labels"][0]  # Stage 2 trains the disputed tag and the confirmed ones: nothing masked here
    assert sum(x != -100 for x in s2) > sum(x != -100 for x in out["stage1"]["labels"][0])
    ds = stage_datasets(out, 1.0, 0)
    assert (len(ds["stage1"]), len(ds["stage2"]), len(ds["stage3"]), len(ds["mix"])) == (1, 1, 2, 4)
    assert stage_datasets(out, 0.0, 0)["stage3"]["user_id"] == ["u1"]


def test_curriculum_config_is_validated():
    with pytest.raises(ConfigError, match="stage2_mix: must be a rate"):
        CurriculumConfig(stage2_mix=2)
    with pytest.raises(ConfigError, match="lr: must be positive"):
        CurriculumConfig(lr=0)
    with pytest.raises(ConfigError, match="stage3_lr: must be positive, or 0 for lr"):
        CurriculumConfig(stage3_lr=-1e-3)
