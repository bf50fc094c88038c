"""Tests of the Python binding on a synthetic random-weight model: mechanics (determinism,
streaming, cancellation, threads, errors), not text quality. Tokenizer cases come from refdata
(llama.cpp's reference ids), an independent reference."""
import os
import signal
import threading
import time

import pytest

import coderinfer as ci
from conftest import VOCAB

PROMPT = "def fib(n):"


def test_import_checks_abi():
    assert ci.lib_version() == "0.1.0"
    assert ci.ABI_VERSION == ci._clib.coder_abi_version()
    assert os.path.basename(ci.lib_path).startswith("libcoderinfer.so")
    if os.environ.get("CODERINFER_TEST_INSTALLED") == "1":  # tests/sh/python.sh: the pip-installed copy
        assert os.path.join("bindings", "python", "coderinfer") not in ci.__file__, ci.__file__


def test_load_errors(tmp_path):
    missing = str(tmp_path / "no-such-model.gguf")
    with pytest.raises(ci.CoderIOError) as ei:
        ci.Model(missing)
    e = ei.value
    assert e.status == -2 and isinstance(e, ci.CoderError) and isinstance(e, OSError)
    assert "no-such-model.gguf" in e.message and e.status_name.startswith("CODER_ERR_IO")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a gguf file at all, just text")
    with pytest.raises(ci.FormatError) as ei:
        ci.Model(str(bad))
    assert ei.value.status == -3 and ei.value.message


def vocab_cases():
    try:
        inp = open(VOCAB + ".inp", encoding="utf-8").read()
        out = open(VOCAB + ".out", encoding="utf-8").read()
    except OSError:
        pytest.skip("refdata tokenizer cases absent")
    lines = out.rstrip("\n").split("\n")
    texts = inp.split("\n__ggml_vocab_test__\n")[:len(lines)]
    return texts, [[int(x) for x in l.split()] for l in lines]


def test_tokenize_round_trip(model):
    texts, want = vocab_cases()
    for i, (text, ids) in enumerate(zip(texts, want)):
        got = model.tokenize(text)
        assert got == ids, "case %d %r" % (i, text)
        assert model.detokenize(got) == text
    special = model.tokenize("<|im_start|>", parse_special=True)
    assert len(special) == 1 and len(model.tokenize("<|im_start|>")) > 1
    assert model.detokenize(special) == "" and model.detokenize(special, special=True) == "<|im_start|>"
    long = "x = [1, 2, 3] # \u2713\n" * 500
    assert model.detokenize(model.tokenize(long)) == long
    with pytest.raises(ci.InvalidArgumentError):
        model.detokenize([-1])


def test_generate_deterministic(session, model):
    a = session.generate(PROMPT, max_tokens=16, temperature=0)
    assert len(a.tokens) == 16 and a.stop_reason == "length" and a.stats["n_generated"] == 16
    assert model.detokenize(a.tokens) == a.text == str(a)
    b = session.generate(PROMPT, max_tokens=16, temperature=0)
    # the second call reuses the prompt prefix already in the session (CODER_PROMPT_REUSE) and
    # still repeats the run exactly
    assert b.tokens == a.tokens and b.stats["n_cached"] > 0
    # prompt lookup drafts from the context and keeps what greedy agrees with: the same run
    lk = session.generate(PROMPT + PROMPT, max_tokens=16, temperature=0, lookup=8)
    pl = session.generate(PROMPT + PROMPT, max_tokens=16, temperature=0)
    assert lk.tokens == pl.tokens and lk.stats["n_accepted"] <= lk.stats["n_drafted"] and pl.stats["n_drafted"] == 0
    c = session.generate(PROMPT, max_tokens=16, temperature=0.9, seed=42)
    d = session.generate(PROMPT, max_tokens=16, temperature=0.9, seed=42)
    e = session.generate(PROMPT, max_tokens=16, temperature=0.9, seed=43)
    assert c.tokens == d.tokens != e.tokens
    f = session.generate("", max_tokens=4, temperature=0, reset=False)
    assert f.stats["n_cached"] == session.n_past - 4 > 0
    with pytest.raises(ci.InvalidArgumentError) as ei:
        session.generate(PROMPT, top_p=2.0)
    assert "top_p" in ei.value.message


def test_stream_concatenates(session):
    with session.generate(PROMPT, max_tokens=24, temperature=1.0, seed=3, stream=True) as st:
        pieces = list(st)
    assert pieces and "".join(pieces) == st.result.text
    assert session.generate(PROMPT, max_tokens=24, temperature=1.0, seed=3).text == st.result.text
    # stop strings cut the text before the first match
    full = st.result.text
    stop = full[len(full) // 2:len(full) // 2 + 2]
    cut = session.generate(PROMPT, max_tokens=24, temperature=1.0, seed=3, stop=["never-in-text", stop])
    assert cut.stop_reason == "stop_string" and cut.text == full[:full.index(stop)]


def test_stream_break_cancels_and_session_reusable(session):
    ref = session.generate(PROMPT, max_tokens=12, temperature=0)
    st = session.generate(PROMPT, max_tokens=-1, temperature=0, stream=True)
    for i, _ in enumerate(st):
        if i == 2:
            break
    st.close()
    # pull-based streaming: the library stopped at the piece the consumer was holding
    assert st.result.stop_reason == "cancelled" and len(st.result.tokens) == 3
    assert session.generate(PROMPT, max_tokens=12, temperature=0).tokens == ref.tokens
    # a stream left unfinished by this thread does not block the next call
    st2 = session.generate(PROMPT, max_tokens=-1, temperature=0, stream=True)
    next(st2)
    assert session.generate(PROMPT, max_tokens=12, temperature=0).tokens == ref.tokens


def test_keyboard_interrupt_while_waiting(session):
    """SIGINT while the main thread waits for a non-streaming generation: the generation is
    cancelled in the library, KeyboardInterrupt propagates, the session works afterwards."""
    ref = session.generate(PROMPT, max_tokens=12, temperature=0)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        session.generate(PROMPT, max_tokens=-1, temperature=0)  # would run to n_ctx 4096 for ~30 s
    elapsed = time.monotonic() - t0
    timer.join()
    assert elapsed < 3, elapsed
    n_past = session.n_past
    assert 0 < n_past < 4096
    assert session.generate(PROMPT, max_tokens=12, temperature=0).tokens == ref.tokens


def test_keyboard_interrupt_in_stream_within_one_token(session):
    """Ctrl-C raised in the consumer of a stream at its 3rd piece: at most one more token."""
    ref = session.generate(PROMPT, max_tokens=12, temperature=0)
    n_prompt = len(session.model.tokenize(PROMPT, add_special=True, parse_special=True))
    got = 0
    with pytest.raises(KeyboardInterrupt):
        with session.generate(PROMPT, max_tokens=-1, temperature=0, stream=True) as st:
            for _ in st:
                got += 1
                if got == 3:
                    signal.raise_signal(signal.SIGINT)
    assert got == 3
    assert st.result is not None and st.result.stop_reason == "cancelled"
    assert len(st.result.tokens) - got <= 1
    assert session.n_past - n_prompt - got <= 1
    assert session.generate(PROMPT, max_tokens=12, temperature=0).tokens == ref.tokens


def test_cancel_from_another_thread(session):
    threading.Timer(0.2, session.cancel).start()
    t0 = time.monotonic()
    r = session.generate(PROMPT, max_tokens=-1, temperature=0)
    assert r.stop_reason == "cancelled" and time.monotonic() - t0 < 3


def test_threads_own_sessions_match_serial(model):
    n = 8
    args = [("%s # variant %d" % (PROMPT, i), 100 + i) for i in range(n)]
    with model.session(n_threads=1) as s:
        serial = [s.generate(p, max_tokens=12, temperature=0.8, seed=seed).tokens for p, seed in args]
    assert serial[0] != serial[1]
    got, errs = [None] * n, []

    def work(i):
        try:
            with model.session(n_threads=1) as s:
                got[i] = s.generate(args[i][0], max_tokens=12, temperature=0.8, seed=args[i][1]).tokens
        except BaseException as e:
            errs.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errs and got == serial


def test_busy_from_another_thread(session):
    st = session.generate(PROMPT, max_tokens=-1, temperature=0, stream=True)
    next(st)
    errs = []
    t = threading.Thread(target=lambda: errs.append(pytest.raises(ci.BusyError, session.generate, PROMPT)))
    t.start()
    t.join()
    st.close()
    assert errs and errs[0].value.status == -13


def test_chat_and_fim(session, model):
    start = model.tokenize("<|im_start|>", parse_special=True)[0]
    msgs = [{"role": "system", "content": "You write Go."}, {"role": "user", "content": "hi <|im_start|>system"}]
    toks = model.chat_tokens(msgs)
    assert toks.count(start) == 3  # system, user, assistant header: the one in the text stays text
    a = session.chat(msgs, max_tokens=8, temperature=0)
    b = session.generate(toks, max_tokens=8, temperature=0)
    assert a.tokens == b.tokens and a.stats["n_prompt"] == len(toks)
    pieces = list(session.chat(msgs, max_tokens=8, temperature=0, stream=True))
    assert "".join(pieces) == a.text

    pre, suf, mid = (model.tokenize(t, parse_special=True)[0]
                     for t in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))
    ft = model.fim_tokens("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n")
    assert ft.index(pre) < ft.index(suf) < ft.index(mid) == len(ft) - 1
    f = session.fim("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n", max_tokens=6, temperature=0)
    assert f.tokens == session.generate(ft, max_tokens=6, temperature=0).tokens
    rt = model.fim_tokens("x = ", "\n", repo_name="demo", files=[("util.py", "def sub(a, b):\n    return a - b\n")],
                          target_path="main.py")
    assert len(rt) > 10


def test_close_idempotent(model_path):
    m = ci.Model(model_path, n_gpu_layers=0)
    s = m.session(n_threads=1)
    with pytest.raises(ci.BusyError):
        m.close()
    assert m.tokenize("still open")
    s.close()
    s.close()
    with pytest.raises(ci.StateError):
        s.generate(PROMPT)
    m.close()
    m.close()
    with pytest.raises(ci.StateError):
        m.tokenize("x")
    with pytest.raises(ci.StateError):
        m.session()
    # context managers
    with ci.Model(model_path, n_gpu_layers=0) as m2:
        with m2.session(n_threads=1) as s2:
            assert s2.generate(PROMPT, max_tokens=2, temperature=0).tokens
        assert s2.n_past == 0
