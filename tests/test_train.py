"Training: an interrupted run resumes from its last checkpoint and ends where an uninterrupted one does; wandb modes."
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r'''
import os, signal, sys
from pathlib import Path
from transformers import TrainerCallback
from usergpt.baselines import legacy_labels
from usergpt.config import TrainConfig
from usergpt.knowledge import load_knowledge_base
from usergpt.model import ModelConfig, build_tiny_qwen, train_tokenizer
from usergpt.train import sft_dataset, target_text, train_run

out, kill_at = Path(sys.argv[1]), int(sys.argv[2])
lines = ["[Source: E-commerce] [TIME: 2026-05] [TYPE: Purchase] [COUNT: 6] | Cat Litter, Lipstick",
         "[Source: POI] [TIME: 2026-06-20] [TYPE: Visit] [COUNT: 9] | Super Monkey (Gym) @ Chengdu",
         "[Source: E-commerce] [TIME: 2026-06-21] [TYPE: Purchase] [COUNT: 4] | Dog Food"]
docs = ["\n".join(lines[i % 3:]) for i in range(24)]
labels = [legacy_labels(d) for d in docs]
schema = load_knowledge_base().schema
tok = train_tokenizer(docs + [target_text(d.split("\n"), l) for d, l in zip(docs, labels)], vocab_size=800)
ds = sft_dataset(docs, labels, tok, schema, max_prompt_tokens=2048, list_values=False)

class Kill(TrainerCallback):
    "Simulates a crash: SIGKILL right after step `kill_at` (the checkpoint before it is on disk)."
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == kill_at: os.kill(os.getpid(), signal.SIGKILL)

cfg = TrainConfig(batch_size=4, save_steps=3, warmup_steps=1, logging_steps=1, wandb="disabled")
m = train_run(build_tiny_qwen(ModelConfig(), tok, seed=0), tok, ds, out, steps=9, lr=3e-3, cfg=cfg, seed=0,
              callbacks=[Kill()] if kill_at else [])
print("RESULT", m["resumed_from"], m["steps"])
'''


def _run(script: Path, out: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), str(out), str(kill_at)], capture_output=True, text=True,
                          timeout=600,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    from safetensors.torch import load_file
    script = tmp_path / "train_tiny.py"
    script.write_text(SCRIPT)
    whole = _run(script, tmp_path / "whole", 0)
    assert whole.returncode == 0, whole.stderr
    assert "RESULT None 9" in whole.stdout
    killed = _run(script, tmp_path / "broken", 7)
    assert killed.returncode == -9  # SIGKILL: no chance to clean up
    ckpts = sorted(p.name for p in (tmp_path / "broken" / "checkpoints").iterdir() if p.name.startswith("checkpoint-"))
    assert ckpts[-1] == "checkpoint-6" and not (tmp_path / "broken" / "model.safetensors").exists()
    sidecar = json.loads((tmp_path / "broken" / "checkpoints" / "checkpoint-6" / "usergpt.json").read_text())
    assert sidecar["step"] == 6 and sidecar["run_key"] and "loss" in sidecar["metrics"]
    resumed = _run(script, tmp_path / "broken", 0)
    assert resumed.returncode == 0, resumed.stderr
    assert "RESULT checkpoint-6 9" in resumed.stdout
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "broken" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:  # the resumed run ends where the uninterrupted one does
        assert (a[k] - b[k]).abs().max().item() < 1e-5, k
    assert json.loads((tmp_path / "broken" / "usergpt.json").read_text())["metrics"]["resumed_from"] == "checkpoint-6"


def test_wandb_modes(tmp_path, monkeypatch):
    from usergpt.train import wandb_report_to
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert wandb_report_to("disabled", tmp_path) == [] and "WANDB_MODE" not in os.environ
    with pytest.raises(ValueError, match="offline, online or disabled"):
        wandb_report_to("sometimes", tmp_path)
    pytest.importorskip("wandb")
    assert wandb_report_to("offline", tmp_path / "w") == ["wandb"]
    assert os.environ["WANDB_MODE"] == "offline" and Path(os.environ["WANDB_DIR"]) == tmp_path / "w"


def test_sft_plan_chains_later_sources():
    "Without chain_steps every source trains from Stage 0; with it, later sources resume from the one before."
    from usergpt.train import sft_plan
    assert sft_plan(["legacy", "gold"], 500) == [("sft_legacy", "legacy", None, 500, False),
                                                 ("sft_gold", "gold", None, 500, False)]
    assert sft_plan(["legacy", "gold"], 500, 140) == [("sft_legacy", "legacy", None, 500, False),
                                                      ("sft_gold", "gold", "sft_legacy", 140, False)]
    assert sft_plan(["gold", "legacy"], 30, 7) == [("sft_gold", "gold", None, 30, False),
                                                   ("sft_legacy", "legacy", "sft_gold", 7, False)]


def test_sft_plan_puts_the_coarse_phase_before_a_run_from_stage_0():
    "With coarse_steps, a source that starts from Stage 0 trains on coarse prompts first; a chained one does not."
    from usergpt.train import sft_plan
    assert sft_plan(["legacy", "gold"], 160, 140, 600) == [("sft_legacy_coarse", "legacy", None, 600, True),
                                                           ("sft_legacy", "legacy", "sft_legacy_coarse", 160, False),
                                                           ("sft_gold", "gold", "sft_legacy", 140, False)]
    assert sft_plan(["legacy", "gold"], 20, 0, 8) == [("sft_legacy_coarse", "legacy", None, 8, True),
                                                      ("sft_legacy", "legacy", "sft_legacy_coarse", 20, False),
                                                      ("sft_gold_coarse", "gold", None, 8, True),
                                                      ("sft_gold", "gold", "sft_gold_coarse", 20, False)]
