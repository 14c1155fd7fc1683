"""DF-GRPO: the sample and group filters on hand-made groups (exact kept masks), the rewards with TRL's signature,
the run key, and the trainer subclass applying the filters to a real GRPO step."""
from __future__ import annotations

import json

import numpy as np
import pytest

from usergpt.config import ConfigError, GrpoConfig
from usergpt.grpo import (dual_filter_masks, dual_filter_trainer, group_filter, grpo_key, reward_functions,
                          sample_filter)
from usergpt.knowledge import load_knowledge_base

SCHEMA = load_knowledge_base().schema
# two prompts × four rollouts; columns: format, accuracy, summary (NaN: the function does not apply)
REWARDS = np.array([[1, 1.0, np.nan], [1, 1.0, np.nan], [1, 1.0, np.nan], [1, 1.0, np.nan],    # solved
                    [1, np.nan, 0.6], [0, np.nan, 0.0], [1, np.nan, 0.4], [1, np.nan, 0.2]])   # a summary group
TRUNCATED = np.array([0, 0, 0, 0, 0, 0, 1, 0], dtype=bool)


@pytest.mark.parametrize("sample,group,expected", [
    (True, True, [0, 0, 0, 0, 1, 0, 0, 1]),
    (True, False, [1, 1, 1, 1, 1, 0, 0, 1]),
    (False, True, [0, 0, 0, 0, 1, 1, 1, 1]),
    (False, False, [1] * 8)])
def test_dual_filter_keeps_exactly(sample, group, expected):
    keep, stats = dual_filter_masks(REWARDS, TRUNCATED, 4, 0.05, 0.95, sample=sample, group=group)
    assert keep.tolist() == [bool(x) for x in expected]
    assert stats["kept_samples"] == 0.75 and stats["kept_groups"] == 0.5  # what each filter would keep, on or off


def test_filters_on_their_own():
    assert sample_filter([1, 0, 1], [0, 0, 1]).tolist() == [True, False, False]
    # the bounds are inclusive; a hopeless group (all 0) and a solved one (all 1) go
    assert group_filter([0, 0, 1, 1, 0.05, 0.05, 0.95, 0.95], 2, 0.05, 0.95).tolist() == \
        [False, False, False, False, True, True, True, True]
    with pytest.raises(ValueError):
        group_filter([1, 0, 1], 2, 0.1, 0.9)  # rollouts must come in whole groups


def test_rewards_have_trls_signature():
    fmt, acc, summ = reward_functions(SCHEMA)
    labels = json.dumps({t: None for t in SCHEMA.ids} | {"gender": "male", "pet": "dog", "interests": ["hiking"]})
    good = '<think>x</think><answer>{"gender":"male","pet":"cat","interests":["hiking"]}</answer>'
    assert fmt(prompts=["p"] * 2, completions=[good, "no"], completion_ids=[[1], [2]], task=["tags"] * 2) == [1.0, 0.0]
    assert acc(prompts=["p"], completions=[good], completion_ids=[[1]], task=["tags"], labels=[labels]) == [2 / 3]
    summary = '<think>x</think><answer>{"summary": "Life stage: male. Household context: a dog."}</answer>'
    assert acc(prompts=["p"], completions=[summary], task=["summary"], labels=[labels]) == [None]
    (score,) = summ(prompts=["p"], completions=[summary], task=["summary"], labels=[labels])
    assert 0 < score < 1
    assert summ(prompts=["p"], completions=["junk"], task=["summary"], labels=[labels])[0] < score


def test_summary_reward_counts_what_the_labels_support():
    "A wrong claim lowers the summary reward, a claim about an unconfirmed tag (label None) leaves it as it is."
    _, _, summ = reward_functions(SCHEMA)
    _, _, plain = reward_functions(SCHEMA, summary="judge")
    labels = json.dumps({t: None for t in SCHEMA.ids} | {"gender": "male", "pet": "dog"})
    say = lambda text: f'<think>x</think><answer>{{"summary": "{text}"}}</answer>'
    right = say("Life stage: a man. Household context: a dog.")
    wrong = say("Life stage: a man. Household context: a cat.")
    unknown = say("Life stage: a man. Household context: a dog. Lifestyle: hiking.")
    one = say("Life stage: a man. Household context: a pet.")
    r = lambda f, x: f(prompts=["p"], completions=[x], task=["summary"], labels=[labels])[0]
    assert r(summ, right) > r(summ, one) > r(summ, wrong)  # a right claim is worth saying, a wrong one costs
    assert r(plain, wrong) == pytest.approx(r(plain, one))  # the judge: its completeness pays for it
    assert r(summ, unknown) == pytest.approx(r(summ, right), abs=0.03)  # interests unknown: only its words count


def test_rewards_read_the_special_tokens_trl_drops():
    "TRL's completion text skips special tokens; the rewards decode `completion_ids` with the project's tokenizer."
    from usergpt.model import train_tokenizer
    good = '<think>x</think><answer>{"gender":"male"}</answer>'
    tok = train_tokenizer([good] * 20, vocab_size=300)
    ids = tok(good + tok.eos_token + tok.pad_token * 2, add_special_tokens=False)["input_ids"]
    plain = tok.decode(ids, skip_special_tokens=True)
    assert "<answer>" not in plain
    assert reward_functions(SCHEMA, tok)[0](prompts=["p"], completions=[plain], completion_ids=[ids],
                                           task=["tags"]) == [1.0]
    assert reward_functions(SCHEMA)[0](prompts=["p"], completions=[plain], completion_ids=[ids], task=["tags"]) == [0.0]


def test_trainer_applies_the_group_filter_to_a_real_step(tmp_path):
    "One GRPO step on a tiny model: the solved prompt's group is filtered, the mixed one kept."
    from datasets import Dataset
    from trl import GRPOConfig

    from usergpt.model import ModelConfig, build_tiny_qwen, save_model, train_tokenizer
    tok = train_tokenizer(["easy question", "hard question", "<think></think><answer></answer>"] * 10, vocab_size=300)
    model_dir = save_model(build_tiny_qwen(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                                       intermediate_size=64, max_positions=64), tok),
                           tok, tmp_path / "m", step=0)
    seen: dict[str, int] = {}
    def task_reward(prompts, completions, **kw):  # easy: solved (1, 1); hard: (0, 1) in the order they come
        out = []
        for p in prompts:
            seen[p] = seen.get(p, 0) + 1
            out.append(1.0 if p.startswith("easy") else float(seen[p] % 2 == 0))
        return out
    def format_reward(prompts, completions, **kw): return [1.0] * len(prompts)
    args = GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=6, beta=0.0, learning_rate=1e-3, use_cpu=True, bf16=False,
                      gradient_checkpointing=False, report_to=[], save_strategy="no", logging_steps=1,
                      disable_tqdm=True, seed=0)
    from usergpt.model import load_model
    model, _ = load_model(model_dir)
    trainer = dual_filter_trainer()(model=model, reward_funcs=[format_reward, task_reward], args=args,
                                    train_dataset=Dataset.from_dict({"prompt": ["easy question", "hard question"]}),
                                    processing_class=tok, sample_filter=False, group_filter=True, eps_low=0.05,
                                    eps_high=0.95)
    trainer.train()
    (log,) = trainer.kept_log
    assert log["kept_groups"] == 0.5 and log["kept"] == 0.5 and log["kept_samples"] == 0.0  # nothing ends: truncated


def test_grpo_config_is_validated():
    with pytest.raises(ConfigError, match="eps_low: must not exceed eps_high"):
        GrpoConfig(eps_low=0.9, eps_high=0.1)
    with pytest.raises(ConfigError, match="group_size: must be a number ≥ 2"):
        GrpoConfig(group_size=1)


def test_run_key_covers_what_trains_not_what_scores():
    base = dict(sample=True, group=True, start="curriculum/stage3", data="fp", start_key="k")
    key = grpo_key(GrpoConfig(), **base)
    assert grpo_key(GrpoConfig(eval_users=80), **base) == key  # scoring more users keeps the trained runs
    assert grpo_key(GrpoConfig(seeds=3), **base) == key  # more runs per row keep the first
    assert grpo_key(GrpoConfig(), **base, seed=5) not in (key, grpo_key(GrpoConfig(), **base, seed=6))  # each run's own
    assert grpo_key(GrpoConfig(steps=31), **base) != key
    assert grpo_key(GrpoConfig(), **(base | dict(group=False))) != key
    assert grpo_key(GrpoConfig(), **(base | dict(start_key="other"))) != key  # the start was retrained
