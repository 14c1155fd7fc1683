"""The papermill pipeline: notebooks take only what selects a run, smoke profile end to end, skipping, forcing, failing
stages."""
from __future__ import annotations

import itertools
import json
import shutil

import papermill as pm
import pytest
from conftest import ROOT, run_cli, write_settings

from usergpt.reproduce import PARAMETERS, STAGES


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_stage_notebooks_take_only_what_selects_a_run(stage):
    """Each stage notebook's papermill parameters are the profile, the settings file and the root; its settings come
    from the profile."""
    declared = pm.inspect_notebook(str(ROOT / "nbs" / stage.notebook))
    assert set(declared) == set(PARAMETERS)
    assert declared["profile"]["default"].strip("\"'") == "smoke"
    source = (ROOT / "nbs" / stage.notebook).read_text()
    assert "load_profile(profile, settings, root)" in source and "globals()" not in source


def test_reproduce_smoke_end_to_end(tmp_path):
    out = tmp_path / "out"
    first = run_cli("usergpt-reproduce", "--profile", "smoke", "--out", str(out))
    assert all(f"[{s}] running" in first.stdout
               for s in ("knowledge", "simulate", "semantize", "bench", "baselines", "train", "teachers", "curriculum",
                         "grpo", "incremental", "evaluate"))
    assert "without encryption" not in first.stdout + first.stderr  # the kernels talk over IPC, not TCP
    assert "sft_legacy: step 10/10" in first.stdout  # training's progress lines stream through
    assert "usergpt_sft_legacy in_domain: 100%" in first.stderr  # and so do the stages' progress bars
    report = out / "reports" / "smoke"
    def strict(token): raise ValueError(f"metrics.json holds {token}: not strict JSON")
    metrics = json.loads((report / "metrics.json").read_text(), parse_constant=strict)
    assert set(metrics) >= {"knowledge", "simulate", "semantize", "bench", "tags", "train", "performance"}
    tags = metrics["tags"]
    assert {"majority", "legacy_rules", "logreg", "dnn", "logreg_gold", "dnn_gold", "untrained", "usergpt_sft_legacy",
            "usergpt_sft_gold", "usergpt_curriculum", "usergpt_df_grpo"} <= set(tags)
    # the DNN on the curriculum labels and its controls: in the teachers' metrics and beside `dnn` in tags.md
    assert {"dnn", "dnn_curriculum", "dnn_ds", "dnn_pool"} <= set(metrics["teachers"]["dnn"])
    assert all(f"| {s} |" in (report / "tables" / "tags.md").read_text() for s in ("dnn_curriculum", "dnn_ds"))
    # every row of the ablation ran and was scored, at equal compute (beside them: the differences between rows)
    grpo = {k: v for k, v in metrics["grpo"].items() if k not in ("grpo_differences", "grpo_seed_differences")}
    assert set(grpo) == {"sft", "grpo", "group_only", "sample_only", "df_grpo"}
    assert all(set(r) >= {"avg10", "pass10", "acc_ex", "cov_ex", "kept_samples", "kept_groups"} for r in grpo.values())
    assert grpo["grpo"]["kept_samples"] == grpo["grpo"]["kept_groups"] == 1  # no filter: every rollout kept
    # grpo.seeds = 2: every RL row is the mean of two runs, each scored; the start has one model
    assert [len(grpo[r]["acc_ex_runs"]) for r in ("sft", "grpo", "df_grpo")] == [1, 2, 2]
    assert grpo["grpo"]["avg10"] == pytest.approx(sum(grpo["grpo"]["avg10_runs"]) / 2, abs=1e-9)
    assert all(len(v["in_domain"]["acc_ex"]) == 2 for v in metrics["grpo"]["grpo_seed_differences"].values())
    teachers = metrics["teachers"]  # 10 expert-seed users, 30 curriculum users: every question has one fate
    assert set(teachers["panel"]) == {"legacy", "rules_yearly", "rules_recent", "seed_logreg", "seed_dnn",
                                      "knowledge_prior", "model:train/sft_legacy"}
    assert sum(teachers["fates"].values()) == teachers["questions"] == 30 * 18
    assert set(metrics["curriculum"]) == {"base", "stage1", "stage2", "stage3", "mix"}
    assert all(set(metrics["curriculum"][r]["in_domain"]) >= {"pass1", "avg", "pass_at_k", "acc_ex", "cov_ex"}
               for r in metrics["curriculum"])
    # which task each row answers: shares, in the table beside Table 7's
    assert all(0 <= metrics["curriculum"][r][s][f"{t}_answered"] <= 1 for r in metrics["curriculum"]
               for s in ("in_domain", "ood") for t in ("tags", "summary"))
    assert "Which task each row answers" in (report / "tables" / "curriculum.md").read_text()
    # each named difference between rows, per split and metric, with its interval: the value is the rows' difference
    cur, rl = metrics["curriculum_differences"], metrics["grpo"]["grpo_differences"]
    assert set(cur) == {"stage2-base", "stage3-stage2", "stage3-mix"}
    assert set(rl) == {"grpo-sft", "df_grpo-sft", "group_only-grpo", "sample_only-grpo", "df_grpo-grpo"}
    for pair, by in cur.items():
        for split, metric in itertools.product(("in_domain", "ood"), ("avg", "acc_ex")):
            a, b = (metrics["curriculum"][r][split][metric] for r in pair.split("-"))
            iv = by[split][metric]
            assert iv["value"] == pytest.approx(a - b, abs=1e-9) and iv["low"] <= iv["high"]
    for pair, by in rl.items():
        for metric, key in (("avg", "avg10"), ("acc_ex", "acc_ex")):
            a, b = (grpo[r][key] for r in pair.split("-"))
            assert by["in_domain"][metric]["value"] == pytest.approx(a - b, abs=1e-9)
    assert all("Differences between rows" in (report / "tables" / f).read_text() for f in ("curriculum.md", "grpo.md"))
    assert set(metrics["summary"]) == {"template", "usergpt_base", "usergpt_stage1", "usergpt_stage2",
                                       "usergpt_stage3", "usergpt_mix"}
    assert all(set(s) >= {"acc_ex", "cov_ex", "bleu2", "bleu4", "score_sim", "judge"}
               for s in metrics["summary"].values())
    inc = metrics["incremental"]  # the update against a full recompute: its cost and agreement, measured
    assert inc["users"] == 8 and 0 <= inc["agreement"] <= 1 and 0 < inc["token_ratio"] and 0 < inc["time_ratio"]
    assert (out / "runs" / "smoke" / "incremental" / "incremental" / "profiles.parquet").is_file()
    assert metrics["curriculum_examples"]["mix"] == sum(metrics["curriculum_examples"][s]
                                                        for s in ("stage1", "stage2", "stage3"))
    # model rows: Avg@10 <= Pass@10, per dimension, both splits
    for system in ("untrained", "usergpt_sft_legacy", "usergpt_sft_gold"):
        for split in ("in_domain", "ood"):
            s = tags[system][split]
            assert 0 <= s["Avg"]["avg"] <= s["Avg"]["pass_at_k"] <= 1 and {"LS", "HC", "LI", "EP", "GC"} <= set(s)
    perf = metrics["performance"]
    assert (perf["peak_gflops"] > 0 and perf["train"]["sft_legacy"]["tokens_per_second"] > 0
            and 0 < perf["train"]["sft_legacy"]["mfu"] < 1)
    assert perf["generation"]["usergpt_sft_legacy"]["in_domain"]["sequences"] == 20 * 10  # evaluate.users = 20
    # legacy trains 3 steps on 256-token prompts (train.coarse_steps), then 10 on full prompts; gold resumes from it
    train_runs = metrics["train"]["runs"]
    assert ([train_runs[r]["starts_from"] for r in ("sft_legacy_coarse", "sft_legacy", "sft_gold")]
            == ["pretrain", "sft_legacy_coarse", "sft_legacy"])
    assert [train_runs[r]["steps"] for r in ("sft_legacy_coarse", "sft_legacy", "sft_gold")] == [3, 10, 5]
    assert [train_runs[r]["prompt_tokens"] for r in ("sft_legacy_coarse", "sft_legacy")] == [256, 768]
    cut, whole = (train_runs[r]["truncation"] for r in ("sft_legacy_coarse", "sft_legacy"))
    assert cut["prompts_truncated"] > whole["prompts_truncated"] and cut["prompt_tokens_mean"] <= 256
    assert all(perf["wall_seconds"][s] > 0 for s in ("simulate", "train", "evaluate"))
    runs_dir = out / "runs" / "smoke"
    # every model directory loads as a checkpoint with its sidecar
    for name in ("train/base", "train/pretrain", "train/sft_legacy", "train/sft_gold", "curriculum/stage1",
                 "curriculum/stage2", "curriculum/stage3", "curriculum/mix", "grpo/grpo", "grpo/group_only",
                 "grpo/sample_only", "grpo/df_grpo", "grpo/df_grpo_s1"):
        model_dir = runs_dir / name
        assert (model_dir / "model.safetensors").is_file() and (model_dir / "usergpt.json").is_file()
    import pandas as pd
    gens = pd.read_parquet(runs_dir / "evaluate" / "generations.parquet")
    assert len(gens) == 5 * (20 + 20) * 10
    assert all(0 <= tags[s][split]["Avg"]["avg"] <= 1 for s in ("majority", "logreg", "dnn")
               for split in ("in_domain", "ood"))
    assert tags["legacy_rules"]["in_domain"]["Avg"]["avg"] > tags["majority"]["in_domain"]["Avg"]["avg"]
    assert metrics["simulate"]["users"] == 40 and metrics["knowledge"]["entities"] >= 2000
    assert metrics["simulate"]["checker"]["after"] == {"persona_gate": 0, "location": 0, "platform_action": 0,
                                                       "intent_category": 0}
    budget = metrics["semantize"]["budget"]  # the token budget's cost, measured
    assert budget["max_tokens"] == 400 and budget["tokens_mean"] <= 400 and budget["legacy_avg_full"] > 0
    assert 0 < budget["legacy_avg"] <= 1 and 0 < budget["retention_units"] <= 1
    assert metrics["train"]["truncation"]["prompts_truncated"] <= 0.01  # the whole budgeted MUB fits the prompt
    # every train.eval_steps = 5 and at the end: legacy at steps 5 and 10, gold (5 chained steps) at step 5
    assert [[x["step"] for x in metrics["train"]["runs"][f"sft_{s}"]["heldout_curve"]] for s in ("legacy", "gold")] == [
        [5, 10], [5]]
    sem = metrics["semantize"]
    counts = sem["counts"]
    assert counts["read"] == counts["semantized"] + counts["quarantined"] + counts["duplicates_dropped"]
    assert sem["pii"]["all"]["recall"] >= 0.99 and sem["mub_share_of_raw_tokens"] < 0.25
    external = sem["pii_external"]  # hand-written PII cases; names of people reported apart, precision null
    assert external["all"]["cases"] >= 200 and min(external["all"]["recall"], external["all"]["precision"]) >= 0.95
    assert external["PERSON"]["precision"] is None and "CREDIT_CARD" in external
    for name in ("knowledge.md", "simulation.md", "semantization.md", "bench.md", "tags.md", "training.md",
                 "incremental.md",
                 "performance.md", "teachers.md", "curriculum.md", "summary.md", "grpo.md"):
        assert (report / "tables" / name).read_text().startswith("# ")
    assert (report / "figures" / "simulate_user_timeline.png").stat().st_size > 10_000
    assert (report / "notebooks" / "02_simulate.ipynb").is_file()
    manifest = json.loads((out / "runs" / "smoke" / "simulate" / "manifest.json").read_text())
    assert manifest["stage_key"] and manifest["row_counts"]["users"] == 40 and manifest["seed"] == 0
    # unchanged inputs and parameters: both stages are skipped
    second = run_cli("usergpt-reproduce", "--profile", "smoke", "--out", str(out))
    assert second.stdout.count("skipped") >= 10 and "running" not in second.stdout
    # skipped stages still publish their tables
    assert "usergpt_sft_legacy" in (report / "tables" / "tags.md").read_text()
    # training again from scratch, through the accelerate launcher this time, gives the same weights (same profile and
    # seed)
    train_manifest = json.loads((runs_dir / "train" / "manifest.json").read_text())
    shutil.rmtree(runs_dir / "train")
    run_cli("accelerate", "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "cpu.yaml"), "-m",
            "usergpt.train",
            "--profile", "smoke", "--out", str(out))
    retrained = json.loads((runs_dir / "train" / "manifest.json").read_text())
    assert retrained["content_hash"] == train_manifest["content_hash"]
    # the teacher panel's answers, vote, aggregation and DNN predictions, and the curriculum's models and
    # generations, are deterministic too
    before = {s: json.loads((runs_dir / s / "manifest.json").read_text()) for s in ("teachers", "curriculum")}
    shutil.rmtree(runs_dir / "curriculum")  # its finished runs would otherwise be kept as they are
    run_cli("usergpt-reproduce", "--profile", "smoke", "--out", str(out), "--stages", "teachers,curriculum", "--force")
    for s, m in before.items():
        assert json.loads((runs_dir / s / "manifest.json").read_text())["content_hash"] == m["content_hash"], s
    # --force with a stage subset re-runs just that stage, with identical artifacts
    third = run_cli("usergpt-reproduce", "--profile", "smoke", "--out", str(out), "--stages", "simulate", "--force")
    assert "[simulate] running" in third.stdout and all(f"[{s}]" not in third.stdout
                                                        for s in ("knowledge", "semantize", "bench", "baselines"))
    again = json.loads((out / "runs" / "smoke" / "simulate" / "manifest.json").read_text())
    assert again["content_hash"] == manifest["content_hash"] and again["events_hash"] == manifest["events_hash"]


def test_failing_stage_is_named(tmp_path):
    "A stage that raises stops the run, naming the stage, the cell and the executed notebook with the traceback."
    import nbformat
    settings = write_settings(tmp_path / "settings.ini")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "nbs").mkdir()
    nb = nbformat.read(ROOT / "nbs" / "01_knowledge.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('raise ValueError("the catalog is empty")'))
    nbformat.write(nb, tmp_path / "nbs" / "01_knowledge.ipynb")
    res = run_cli("usergpt-reproduce", "--profile", "test", "--settings", str(settings), "--stages", "knowledge",
                  "--out", str(tmp_path / "o"), check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert ("stage knowledge failed in cell" in res.stderr and "ValueError: the catalog is empty" in res.stderr
            and "01_knowledge.ipynb" in res.stderr)
    manifest = json.loads((tmp_path / "o" / "runs" / "test" / "knowledge" / "manifest.json").read_text())
    assert "stage_key" not in manifest  # a failed stage is never marked done: the next run re-runs it
