"""Fixtures: a small synthetic model made with `coder mkmodel` from the refdata qwen2 vocabulary.

CODER_BUILD (default ../../build from here) holds `coder` and libcoderinfer.so.0 (used unless
CODERINFER_LIB is set); CODER_REFDATA (default ../../../shared/refdata) holds the vocabulary.
Without them the model tests SKIP."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("CODER_BUILD") or os.path.join(HERE, "..", "..", "..", "build"))
REFDATA = os.path.abspath(os.environ.get("CODER_REFDATA") or os.path.join(HERE, "..", "..", "..", "..", "shared",
                                                                           "refdata"))
VOCAB = os.path.join(REFDATA, "vocab", "ggml-vocab-qwen2.gguf")

if not os.environ.get("CODERINFER_LIB") and os.path.exists(os.path.join(BUILD, "libcoderinfer.so.0")):
    os.environ["CODERINFER_LIB"] = os.path.join(BUILD, "libcoderinfer.so.0")
# The package from this source tree unless another copy was installed on purpose.
if os.environ.get("CODERINFER_TEST_INSTALLED") != "1":
    sys.path.insert(0, os.path.dirname(HERE))


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    if not os.path.exists(VOCAB):
        pytest.skip("refdata vocabulary %s absent (set CODER_REFDATA)" % VOCAB)
    coder = os.path.join(BUILD, "coder")
    if not os.path.exists(coder):
        pytest.skip("%s not built (make cli)" % coder)
    out = str(tmp_path_factory.mktemp("model") / "tiny-q8_0.gguf")
    subprocess.run([coder, "mkmodel", "--preset", "tiny", "--type", "Q8_0", "--vocab", VOCAB, "-o", out],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def model(model_path):
    import coderinfer
    m = coderinfer.Model(model_path, n_gpu_layers=0)
    yield m
    m.close()


@pytest.fixture
def session(model):
    with model.session(n_threads=1, n_ctx=4096) as s:
        yield s
