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
