"""Tags answers sampled with and without the schema constraint (`evaluate.constrained`), the same users and seeds:
Avg@k, the share of samples parsed, answers with a key or value outside the schema, and seconds.

    python scripts/constrained_check.py train/sft_legacy 80            # a model under runs/cpu/, 80 + 80 bench users
"""
import json
import sys
import time
from dataclasses import replace

from usergpt.bench import load_bench_stage
from usergpt.config import find_settings, load_profile
from usergpt.evaluate import sample_model, score_outputs
from usergpt.knowledge import load_knowledge_base
from usergpt.metrics import parse_output

model, users = sys.argv[1], int(sys.argv[2])
prof = load_profile(sys.argv[3] if len(sys.argv) > 3 else "cpu", find_settings())
schema = load_knowledge_base().schema
for split, df in load_bench_stage(prof.stage_dir("bench"), users).items():
    golds = [json.loads(g) for g in df.gold]
    for constrained in (False, True):
        t0 = time.perf_counter()
        outs, _ = sample_model(prof.run_dir / model, list(df.mub_text), schema,
                               replace(prof.evaluate, constrained=constrained), prof.train.max_prompt_tokens,
                               desc=f"{split} constrained={constrained}", list_values=prof.train.list_tag_values)
        s = score_outputs(outs, golds, schema)
        slips = sum(bool(parse_output(o, schema).problems) for os_ in outs for o in os_)
        print(json.dumps(dict(model=model, split=split, users=len(df), constrained=constrained,
                              avg=round(s["Avg"]["avg"], 4), parsed=round(s["parsed"], 4),
                              answers_outside_schema=slips, samples=sum(map(len, outs)),
                              seconds=round(time.perf_counter() - t0, 1))), flush=True)
