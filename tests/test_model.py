"The model layer beyond its notebook: the vLLM backend (GPU only), checked against the same interface as hf."
from __future__ import annotations

import pytest
import torch

from usergpt.knowledge import load_knowledge_base
from usergpt.model import ModelConfig, build_prompt, build_tiny_qwen, make_backend, save_model, train_tokenizer

GPU = torch.cuda.is_available()


def _tiny(tmp_path):
    docs = ["[Source: E-commerce] [TIME: 2026-01] [TYPE: Purchase] [COUNT: 3] | Diapers, Baby Wet Wipes"] * 50
    tok = train_tokenizer(docs, vocab_size=600)
    save_model(build_tiny_qwen(ModelConfig(), tok), tok, tmp_path / "m", step=0)
    return tmp_path / "m", build_prompt("tags", docs[0], tok, load_knowledge_base().schema)[0]


def test_hf_backend_shapes_and_seed(tmp_path):
    path, prompt = _tiny(tmp_path)
    hf = make_backend("hf", path)
    a = hf.generate([prompt, prompt], n=4, max_new_tokens=8, seed=3)
    assert [len(x) for x in a] == [4, 4] and hf.generate([prompt, prompt], n=4, max_new_tokens=8, seed=3) == a
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("tgi", path)


@pytest.mark.skipif(not GPU, reason="vLLM needs a CUDA GPU (pip install -e '.[gpu]')")
def test_vllm_backend_same_interface_and_seed(tmp_path):
    pytest.importorskip("vllm")
    path, prompt = _tiny(tmp_path)
    vl = make_backend("vllm", path)
    a = vl.generate([prompt, prompt], n=4, temperature=0.7, top_p=0.9, max_new_tokens=8, seed=3)
    assert ([len(x) for x in a] == [4, 4]
            and vl.generate([prompt, prompt], n=4, temperature=0.7, top_p=0.9, max_new_tokens=8, seed=3) == a)


def test_constrained_answers_are_the_schemas(tmp_path):
    "An untrained model's noise, decoded within the schema from a prompt that opens the answer: every sample parses."
    from usergpt.metrics import parse_output
    path, prompt = _tiny(tmp_path)
    schema = load_knowledge_base().schema
    hf = make_backend("hf", path, batch_size=2)
    opened = prompt + "<think>x</think><answer>"
    free = hf.generate([opened], n=4, max_new_tokens=80, seed=1)[0]
    held = hf.generate([opened, prompt], n=4, max_new_tokens=400, seed=1, schema=schema)
    assert not any(parse_output("<answer>" + t, schema).ok for t in free)  # noise, unconstrained
    for text in held[0]:
        p = parse_output("<answer>" + text, schema)
        assert p.ok and not p.problems and "</answer>" in text, text  # after it the noise goes on: no constraint
    # a prompt that does not open the answer samples as it would unconstrained, as long as no answer is written
    plain = hf.generate([prompt, prompt], n=4, max_new_tokens=12, seed=1)
    assert not any("<answer>" in t for ts in plain for t in ts)
    assert hf.generate([prompt, prompt], n=4, max_new_tokens=12, seed=1, schema=schema) == plain


def test_constrained_needs_the_hf_backend():
    from usergpt.config import EvaluateConfig, FieldError
    assert EvaluateConfig(constrained=True).constrained
    with pytest.raises(FieldError, match="constrained"):
        EvaluateConfig(backend="vllm", constrained=True)
