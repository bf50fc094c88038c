"""Model, Session, Result and streaming over the C API (see include/coderinfer.h).

Threading: a Model may be shared by any number of threads. A Session is used by one thread at a
time (a concurrent second call raises BusyError); give each thread its own Session.

Every generation runs the C call in a worker thread while the calling thread waits, so that
Ctrl-C (KeyboardInterrupt, delivered only to the main thread, and only between bytecodes) is
seen at once: the waiting thread then calls coder_session_cancel, the library stops within one
token (also during prompt evaluation), the worker is joined and KeyboardInterrupt propagates.
The session stays usable.
"""
import ctypes
import queue
import threading
import weakref
from dataclasses import dataclass, field
from typing import Iterator, List, Optional

from . import _lib
from ._lib import lib
from .errors import BusyError, StateError, check, error

TOKENIZE_ADD_SPECIAL = 1
TOKENIZE_PARSE_SPECIAL = 2
DETOKENIZE_SPECIAL = 1
CHAT_ADD_GENERATION_PROMPT = 1

CHAT_FORMATS = {"auto": 0, "chatml": 1, "qwen3": 2, "llama3": 3, "deepseek-coder": 4, "llama2": 5, "raw": 6}
STOP_REASONS = ["none", "eog", "length", "stop_string", "context_full", "cancelled", "error"]
KV_TYPES = {"f16": 0, "f32": 1, "q8_0": 2, "q8_0-q4_0": 3}

_WAIT = 0.05  # seconds between checks for signals while waiting on the worker


def _b(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def _token_buffer(guess, fill):
    """Calls fill(buf, cap, n_ptr) with room for guess ids, again with the needed size if short."""
    for attempt in range(2):
        buf = (ctypes.c_int32 * max(guess, 1))()
        n = ctypes.c_size_t()
        st = fill(buf, guess, ctypes.byref(n))
        if st == -15 and attempt == 0:  # CODER_ERR_BUFFER_TOO_SMALL
            guess = n.value
            continue
        check(st)
        return list(buf[:n.value])
    raise error(-18, "token count changed between two calls")


@dataclass
class Result:
    """A completion. str(result) is its text."""
    text: str
    tokens: List[int]
    stop_reason: str  # "eog", "length", "stop_string", "context_full", "cancelled"
    stats: dict = field(default_factory=dict)

    def __str__(self):
        return self.text


class Model:
    """A loaded GGUF model. Use as a context manager or call close().

    Model(path, n_gpu_layers=-1 (as many as fit; 0 = CPU only), use_mmap=False, n_threads=0,
          validate=False, vocab_only=False)
    use_mmap=True maps the file instead of reading it: faster loads, but a file truncated by another
    process while mapped kills this process with SIGBUS; keep the default for files that may change.
    Raises CoderIOError for a missing file, FormatError/TruncatedError for a malformed one,
    UnsupportedError for an unknown architecture."""

    def __init__(self, path, *, n_gpu_layers=-1, use_mmap=False, n_threads=0, validate=False, vocab_only=False):
        self._p = None
        self._lock = threading.Lock()
        self._sessions = 0
        mp = _lib.ModelParams()
        lib.coder_model_params_init(ctypes.byref(mp))
        mp.n_gpu_layers, mp.use_mmap, mp.n_threads = n_gpu_layers, int(use_mmap), n_threads
        mp.validate_weights, mp.vocab_only = int(validate), int(vocab_only)
        p = ctypes.c_void_p()
        check(lib.coder_model_load(_b(str(path)), ctypes.byref(mp), ctypes.byref(p)))
        self._p = p
        self.path = str(path)

    def _handle(self):
        if self._p is None:
            raise StateError(-14, "model is closed")
        return self._p

    def close(self):
        """Frees the model; raises BusyError while sessions on it are open. Idempotent."""
        with self._lock:
            if self._p is None:
                return
            if self._sessions:
                raise BusyError(-13, "model has %d open sessions: close them first" % self._sessions)
            check(lib.coder_model_free(self._p))
            self._p = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._p is not None and not self._sessions:
                self.close()
        except Exception:
            pass

    @property
    def info(self):
        """The model's hyperparameters and tokenizer facts, as a dict."""
        i = _lib.ModelInfo()
        i.size = ctypes.sizeof(i)
        check(lib.coder_model_get_info(self._handle(), ctypes.byref(i)))
        d = {name: getattr(i, name) for name, _ in i._fields_ if name != "size"}
        d["arch"], d["name"] = i.arch.decode(), i.name.decode("utf-8", "replace")
        return d

    def tokenize(self, text, *, add_special=False, parse_special=False):
        """Token ids of text. By default no BOS is added and control-token text (<|im_start|>) stays
        plain text: safe for untrusted input."""
        data = _b(text)
        flags = (TOKENIZE_ADD_SPECIAL if add_special else 0) | (TOKENIZE_PARSE_SPECIAL if parse_special else 0)
        h = self._handle()
        return _token_buffer(len(data) + 8, lambda buf, cap, n: lib.coder_tokenize(h, data, len(data), flags, buf,
                                                                                   cap, n))

    def detokenize_bytes(self, tokens, *, special=False):
        """The exact bytes of the tokens' text (may end inside a UTF-8 character)."""
        arr = (ctypes.c_int32 * max(len(tokens), 1))(*tokens)
        flags = DETOKENIZE_SPECIAL if special else 0
        h = self._handle()
        cap = 16 * len(tokens) + 16
        for attempt in range(2):
            buf = ctypes.create_string_buffer(cap)
            n = ctypes.c_size_t()
            st = lib.coder_detokenize(h, arr, len(tokens), flags, buf, cap, ctypes.byref(n))
            if st == -15 and attempt == 0:
                cap = n.value
                continue
            check(st)
            return buf.raw[:n.value]
        raise error(-18, "text length changed between two calls")

    def detokenize(self, tokens, *, special=False):
        """The text of the tokens (control tokens omitted unless special=True)."""
        return self.detokenize_bytes(tokens, special=special).decode("utf-8", "replace")

    def chat_tokens(self, messages, *, format="auto", add_generation_prompt=True):
        """messages: [{"role": ..., "content": ...}] (or (role, content) pairs) rendered in the model's
        chat format as token ids. Message text can never inject control tokens."""
        pairs = [(m["role"], m["content"]) if isinstance(m, dict) else tuple(m) for m in messages]
        keep = [(_b(r), _b(c)) for r, c in pairs]
        arr = (_lib.ChatMessage * max(len(keep), 1))(*[_lib.ChatMessage(r, c) for r, c in keep])
        fmt = CHAT_FORMATS[format] if isinstance(format, str) else int(format)
        flags = CHAT_ADD_GENERATION_PROMPT if add_generation_prompt else 0
        h = self._handle()
        guess = sum(len(r) + len(c) + 16 for r, c in keep) + 64
        return _token_buffer(guess, lambda buf, cap, n: lib.coder_chat_tokens(h, fmt, arr, len(keep), flags, buf,
                                                                              cap, n))

    def fim_tokens(self, prefix, suffix, *, repo_name=None, files=None, target_path=None):
        """Fill-in-the-middle prompt ids. files: [(path, content)] of the repository shown before the
        target (Qwen2.5-Coder repository-level form). UnsupportedError without FIM tokens."""
        files = [(_b(p), _b(c)) for p, c in (files or [])]
        farr = (_lib.FimFile * max(len(files), 1))(*[_lib.FimFile(p, c) for p, c in files])
        pre, suf = _b(prefix), _b(suffix)
        repo = _b(repo_name) if repo_name is not None else None
        target = _b(target_path) if target_path is not None else None
        h = self._handle()
        guess = len(pre) + len(suf) + sum(len(p) + len(c) + 8 for p, c in files) + 64
        return _token_buffer(guess, lambda buf, cap, n: lib.coder_fim_tokens(
            h, pre, suf, repo, farr if files else None, len(files), target, buf, cap, n))

    def session(self, **kwargs):
        """A new Session on this model (see Session)."""
        return Session(self, **kwargs)


class Session:
    """A KV cache and the tokens in it: one conversation, used by one thread at a time.

    Session(model, n_ctx=0 (min(training, 4096)), n_batch=0 (512), n_threads=0 (all cores),
            kv_type=None ("f16", "f32", "q8_0" or "q8_0-q4_0": K in Q8_0, V in Q4_0))"""

    def __init__(self, model, *, n_ctx=0, n_batch=0, n_threads=0, kv_type=None):
        self._p = None
        self._busy = threading.Lock()   # held for a whole call (a generation)
        self._plock = threading.Lock()  # guards _p for cancel(), which may come from any thread
        self._stream = None             # weakref to the Stream holding _busy, if any
        sp = _lib.SessionParams()
        lib.coder_session_params_init(ctypes.byref(sp))
        if n_ctx:
            sp.n_ctx = n_ctx
        if n_batch:
            sp.n_batch = n_batch
        if n_threads:
            sp.n_threads = n_threads
        if kv_type is not None:
            sp.kv_type = KV_TYPES[kv_type] if isinstance(kv_type, str) else int(kv_type)
        with model._lock:
            p = ctypes.c_void_p()
            check(lib.coder_session_new(model._handle(), ctypes.byref(sp), ctypes.byref(p)))
            model._sessions += 1
        self.model = model
        self._p = p

    # -- lifetime ------------------------------------------------------------------------------
    def close(self):
        """Frees the session; a generation running in another thread is cancelled and waited for.
        Idempotent."""
        st = self._stream() if self._stream else None
        if st is not None and st._thread == threading.get_ident():
            st.close()
        if not self._busy.acquire(blocking=False):
            self.cancel()
            self._busy.acquire()
        try:
            with self._plock:
                p, self._p = self._p, None
            if p is not None:
                lib.coder_session_free(p)
                with self.model._lock:
                    self.model._sessions -= 1
        finally:
            self._busy.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _enter(self):
        if not self._busy.acquire(blocking=False):
            # An unfinished stream of this same thread (e.g. left by an exception in the consumer's
            # loop): a new call on the session ends it, as a new generator would replace an old one.
            st = self._stream() if self._stream else None
            if st is not None and st._thread == threading.get_ident():
                st.close()
            if not self._busy.acquire(blocking=False):
                raise BusyError(-13, "session is in use by another thread")
        if self._p is None:
            self._busy.release()
            raise StateError(-14, "session is closed")

    def cancel(self):
        """Asks the running generation to stop after the current token. Any thread, any time."""
        with self._plock:
            if self._p is not None:
                lib.coder_session_cancel(self._p)
        st = self._stream() if self._stream else None
        job = st._job if st is not None else None
        if job is not None:
            job.stop.set()  # a streaming callback waiting for its consumer returns "stop"

    def reset(self):
        """Forgets every token the session holds."""
        self._enter()
        try:
            check(lib.coder_session_reset(self._p))
        finally:
            self._busy.release()

    @property
    def n_past(self):
        return lib.coder_session_n_past(self._p) if self._p is not None else 0

    @property
    def n_ctx(self):
        return lib.coder_session_n_ctx(self._p) if self._p is not None else 0

    # -- generation ----------------------------------------------------------------------------
    def generate(self, prompt, *, max_tokens=None, temperature=None, top_k=None, top_p=None, min_p=None,
                 repeat_penalty=None, repeat_last_n=None, frequency_penalty=None, presence_penalty=None,
                 seed=None, stop=None, stream=False, reset=True, raw=False, lookup=None):
        """Generates a completion of prompt (a str, or a list of token ids).

        Sampling arguments left at None take the library's defaults (max_tokens 256, temperature
        0.8, top_k 40, top_p 0.95, min_p 0.05, a random seed); temperature=0 is greedy; a fixed seed
        gives the same tokens every time. stop: strings that end the generation before them.
        reset=True (default) makes the prompt the whole context (as if the session were empty, reusing
        the longest prefix it already holds); reset=False continues what it holds.
        raw=True tokenizes a text prompt without BOS and without control-token matching.
        lookup=N (greedy only) drafts up to N tokens from where the last tokens occurred before in
        the context (prompt lookup: rewriting code the prompt holds goes several tokens per step,
        same output).

        Returns a Result; with stream=True returns a Stream that yields the text pieces as they are
        produced (they concatenate to the text; its .result is set once it is exhausted). Breaking
        out of the loop, stream.close() or KeyboardInterrupt cancel the generation."""
        gp = _lib.GenParams()
        lib.coder_gen_params_init(ctypes.byref(gp))
        for name, v in (("max_tokens", max_tokens), ("temperature", temperature), ("top_k", top_k),
                        ("top_p", top_p), ("min_p", min_p), ("repeat_penalty", repeat_penalty),
                        ("repeat_last_n", repeat_last_n), ("frequency_penalty", frequency_penalty),
                        ("presence_penalty", presence_penalty), ("seed", seed), ("lookup_draft", lookup)):
            if v is not None:
                setattr(gp, name, v)
        if raw:
            gp.tokenize_flags = 0
        keep = []  # objects the C call reads: alive until the worker is done
        if stop:
            stops = [_b(s) for s in ([stop] if isinstance(stop, str) else stop)]
            arr = (ctypes.c_char_p * len(stops))(*stops)
            keep += [stops, arr]
            gp.stop = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
            gp.n_stop = len(stops)
        if isinstance(prompt, (str, bytes)):
            data = _b(prompt)
            keep.append(data)
            call = lambda p, g, r: lib.coder_generate(p, data, len(data), g, r)
        else:
            toks = (ctypes.c_int32 * max(len(prompt), 1))(*prompt)
            n = len(prompt)
            keep.append(toks)
            call = lambda p, g, r: lib.coder_generate_tokens(p, toks, n, g, r)

        self._enter()
        try:
            if reset:
                # Same result as starting from an empty session, but the longest prefix the
                # session already holds (a system prompt, a repository context) is not evaluated again.
                gp.prompt_mode = 1   # CODER_PROMPT_REUSE
            job = _Job(self._p, gp, call, keep, streaming=stream)
        except BaseException:
            self._busy.release()
            raise
        if stream:
            st = Stream(self, job)
            self._stream = weakref.ref(st)
            return st
        try:
            return job.wait()
        finally:
            self._busy.release()

    def chat(self, messages, *, format="auto", **kwargs):
        """Generates the assistant's reply to messages ([{"role", "content"}]) in the model's chat
        format. Takes generate's keyword arguments (stream=True included)."""
        return self.generate(self.model.chat_tokens(messages, format=format), **kwargs)

    def fim(self, prefix, suffix, *, repo_name=None, files=None, target_path=None, **kwargs):
        """Generates the middle between prefix and suffix (fill-in-the-middle). Takes generate's
        keyword arguments."""
        toks = self.model.fim_tokens(prefix, suffix, repo_name=repo_name, files=files, target_path=target_path)
        return self.generate(toks, **kwargs)


class _Job:
    """One C generation running in a worker thread; the final (Result or exception) arrives on a
    queue. Streaming is pull-based: the C callback queues a piece, then waits until the consumer
    asks for the next one, so the library never runs ahead of the consumer and a consumer that
    stops (break, close(), KeyboardInterrupt) stops the generation exactly where it is. The worker
    references nothing of the Stream, so an abandoned Stream can be collected (its __del__
    cancels the job)."""

    _END = object()

    def __init__(self, session_ptr, gp, call, keep, streaming):
        self.p = session_ptr
        self.q = queue.SimpleQueue()
        self.stop = threading.Event()
        self.want = threading.Semaphore(0)  # released by the consumer for each piece after the first
        self.started = False
        q, stop, want = self.q, self.stop, self.want
        if streaming:
            def on_piece(ptr, n, _ud):
                if stop.is_set():
                    return 1
                q.put(ctypes.string_at(ptr, n).decode("utf-8", "replace"))
                while not want.acquire(timeout=_WAIT):
                    if stop.is_set():
                        return 1
                return 1 if stop.is_set() else 0
            self.cb = _lib.PIECE_FN(on_piece)  # kept alive by the job for the whole call
            gp.on_piece = self.cb
        self.thread = threading.Thread(target=_Job._work, args=(q, session_ptr, gp, call, keep),
                                       name="coderinfer-generate", daemon=True)
        self.thread.start()

    @staticmethod
    def _work(q, p, gp, call, keep):
        r = _lib.Result()
        lib.coder_result_init(ctypes.byref(r))
        try:
            st = call(p, ctypes.byref(gp), ctypes.byref(r))
            if st != 0:
                q.put((_Job._END, error(st)))  # same thread as the call: last_error is right
                return
            res = Result(text=ctypes.string_at(r.text, r.text_len).decode("utf-8", "replace") if r.text else "",
                         tokens=list(r.tokens[:r.n_tokens]) if r.n_tokens else [],
                         stop_reason=STOP_REASONS[r.stop_reason] if 0 <= r.stop_reason < 7 else str(r.stop_reason),
                         stats={k: getattr(r.stats, k) for k, _ in _lib.Stats._fields_})
            q.put((_Job._END, res))
        except BaseException as e:  # delivered to the waiting thread
            q.put((_Job._END, e))
        finally:
            lib.coder_result_clear(ctypes.byref(r))

    def next(self):
        """The next piece (str) or the final (_END, Result|exception). Interruptible: on any
        exception while waiting (KeyboardInterrupt) the job is cancelled and joined first."""
        if self.started:
            self.want.release()
        self.started = True
        try:
            while True:
                try:
                    return self.q.get(timeout=_WAIT)
                except queue.Empty:
                    continue
        except BaseException:
            self.cancel_and_join()
            raise

    def cancel_and_join(self):
        self.stop.set()
        while self.thread.is_alive():
            lib.coder_session_cancel(self.p)  # repeated: a cancel before the call starts is forgotten
            self.thread.join(_WAIT)

    def wait(self):
        while True:
            item = self.next()
            if isinstance(item, tuple) and item[0] is _Job._END:
                self.thread.join()
                if isinstance(item[1], BaseException):
                    raise item[1]
                return item[1]


class Stream:
    """Iterator over the text pieces of a streaming generation; .result holds the Result after the
    last piece. close() (or leaving a `with` block, or breaking out of a for loop and dropping the
    stream) cancels a generation still running and frees the session for the next call."""

    def __init__(self, session, job):
        self._session = session
        self._job = job
        self._thread = threading.get_ident()
        self.result: Optional[Result] = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._job is None:
            raise StopIteration
        try:
            item = self._job.next()
        except BaseException:
            self._finish()
            raise
        if isinstance(item, tuple) and item[0] is _Job._END:
            self._finish()
            if isinstance(item[1], BaseException):
                raise item[1]
            self.result = item[1]
            raise StopIteration
        return item

    def _finish(self):
        job, self._job = self._job, None
        if job is not None:
            job.cancel_and_join()
            # A stream closed early still reports what was generated (stop_reason "cancelled").
            while self.result is None and not job.q.empty():
                item = job.q.get_nowait()
                if isinstance(item, tuple) and item[0] is _Job._END and isinstance(item[1], Result):
                    self.result = item[1]
            self._session._busy.release()

    def close(self):
        """Cancels the generation if it still runs and waits for it."""
        self._finish()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._finish()
        except Exception:
            pass
