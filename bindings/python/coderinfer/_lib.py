"""Loading libcoderinfer with ctypes, the C structures and the function prototypes.

The library is looked for, in order, at $CODERINFER_LIB (a file, or a directory holding
libcoderinfer.so.0), in this package's directory, then on the system (ctypes.util.find_library,
then the soname libcoderinfer.so.0 through the dynamic loader's search path).

At import the loaded library must report the ABI version this module was written for, and the
size its *_init functions write into each params struct must equal the ctypes mirror's size: a
mismatch raises ImportError instead of corrupting memory later.
"""
import ctypes
import ctypes.util
import os

ABI_VERSION = 0
SONAME = "libcoderinfer.so.%d" % ABI_VERSION

c_int, c_int32, c_uint, c_size_t = ctypes.c_int, ctypes.c_int32, ctypes.c_uint, ctypes.c_size_t
c_float, c_double, c_uint64 = ctypes.c_float, ctypes.c_double, ctypes.c_uint64
c_char_p, c_void_p = ctypes.c_char_p, ctypes.c_void_p
P = ctypes.POINTER

PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_float, c_void_p)
PIECE_FN = ctypes.CFUNCTYPE(c_int, P(ctypes.c_char), c_size_t, c_void_p)
LOG_FN = ctypes.CFUNCTYPE(None, c_int, c_char_p, c_void_p)


class ModelParams(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("use_mmap", c_int), ("n_gpu_layers", c_int), ("n_threads", c_int),
                ("validate_weights", c_int), ("vocab_only", c_int), ("progress", PROGRESS_FN),
                ("progress_user_data", c_void_p)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("arch", ctypes.c_char * 32), ("name", ctypes.c_char * 128),
                ("n_layers", c_int32), ("dim", c_int32), ("ffn_dim", c_int32), ("n_heads", c_int32),
                ("n_kv_heads", c_int32), ("head_dim", c_int32), ("vocab_size", c_int32),
                ("n_ctx_train", c_int32), ("n_params", c_uint64), ("weight_bytes", c_uint64),
                ("bos_token", c_int32), ("eos_token", c_int32), ("add_bos", c_int32), ("has_fim", c_int32),
                ("chat_format", c_int32), ("gpu_layers", c_int32)]


class SessionParams(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("n_ctx", c_int32), ("n_batch", c_int32), ("n_threads", c_int32),
                ("kv_type", c_int32)]


class GenParams(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("max_tokens", c_int32), ("temperature", c_float), ("top_k", c_int32),
                ("top_p", c_float), ("min_p", c_float), ("repeat_penalty", c_float), ("repeat_last_n", c_int32),
                ("frequency_penalty", c_float), ("presence_penalty", c_float), ("seed", c_uint64),
                ("stop", P(c_char_p)), ("n_stop", c_size_t), ("tokenize_flags", c_uint),
                ("on_piece", PIECE_FN), ("user_data", c_void_p),
                ("prompt_mode", c_int32), ("context_policy", c_int32), ("truncate_keep", c_int32),
                ("lookup_draft", c_int32)]


class Stats(ctypes.Structure):
    _fields_ = [("n_prompt", c_int32), ("n_cached", c_int32), ("n_generated", c_int32),
                ("prefill_ms", c_double), ("decode_ms", c_double), ("prefill_tps", c_double),
                ("decode_tps", c_double), ("n_drafted", c_int32), ("n_accepted", c_int32)]


class Result(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("text", P(ctypes.c_char)), ("text_len", c_size_t),
                ("tokens", P(c_int32)), ("n_tokens", c_size_t), ("stop_reason", c_int32), ("stats", Stats)]


class ChatMessage(ctypes.Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class FimFile(ctypes.Structure):
    _fields_ = [("path", c_char_p), ("content", c_char_p)]


_MODEL, _SESSION = c_void_p, c_void_p

# name: (restype, argtypes)
_PROTOTYPES = {
    "coder_version": (c_char_p, []),
    "coder_version_number": (c_int, []),
    "coder_abi_version": (c_int, []),
    "coder_status_string": (c_char_p, [c_int]),
    "coder_last_error": (c_char_p, []),
    "coder_log_set": (None, [LOG_FN, c_void_p, c_int]),
    "coder_model_params_init": (None, [P(ModelParams)]),
    "coder_model_load": (c_int, [c_char_p, P(ModelParams), P(_MODEL)]),
    "coder_model_free": (c_int, [_MODEL]),
    "coder_model_get_info": (c_int, [_MODEL, P(ModelInfo)]),
    "coder_model_meta": (c_int, [_MODEL, c_char_p, c_char_p, c_size_t, P(c_size_t)]),
    "coder_tokenize": (c_int, [_MODEL, c_char_p, c_size_t, c_uint, P(c_int32), c_size_t, P(c_size_t)]),
    "coder_detokenize": (c_int, [_MODEL, P(c_int32), c_size_t, c_uint, c_char_p, c_size_t, P(c_size_t)]),
    "coder_token_is_eog": (c_int, [_MODEL, c_int32]),
    "coder_chat_tokens": (c_int, [_MODEL, c_int, P(ChatMessage), c_size_t, c_uint, P(c_int32), c_size_t,
                                  P(c_size_t)]),
    "coder_fim_tokens": (c_int, [_MODEL, c_char_p, c_char_p, c_char_p, P(FimFile), c_size_t, c_char_p,
                                 P(c_int32), c_size_t, P(c_size_t)]),
    "coder_session_params_init": (None, [P(SessionParams)]),
    "coder_session_new": (c_int, [_MODEL, P(SessionParams), P(_SESSION)]),
    "coder_session_free": (None, [_SESSION]),
    "coder_session_reset": (c_int, [_SESSION]),
    "coder_session_n_ctx": (c_int32, [_SESSION]),
    "coder_session_n_past": (c_int32, [_SESSION]),
    "coder_session_cancel": (None, [_SESSION]),
    "coder_gen_params_init": (None, [P(GenParams)]),
    "coder_result_init": (None, [P(Result)]),
    "coder_result_clear": (None, [P(Result)]),
    "coder_generate": (c_int, [_SESSION, c_char_p, c_size_t, P(GenParams), P(Result)]),
    "coder_generate_tokens": (c_int, [_SESSION, P(c_int32), c_size_t, P(GenParams), P(Result)]),
}


def _candidates():
    env = os.environ.get("CODERINFER_LIB")
    if env:
        # An explicit choice is the only one tried: a wrong path must not silently load another copy.
        return [os.path.join(env, SONAME) if os.path.isdir(env) else env]
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(here, n) for n in (SONAME, "libcoderinfer.so") if os.path.exists(os.path.join(here, n))]
    found = ctypes.util.find_library("coderinfer")
    if found:
        out.append(found)
    out.append(SONAME)
    return out


def load():
    """Returns (CDLL, path) of the first candidate that loads and passes the ABI checks."""
    errors = []
    for cand in _candidates():
        try:
            lib = ctypes.CDLL(cand)
        except OSError as e:
            errors.append("%s: %s" % (cand, e))
            continue
        missing = [n for n in _PROTOTYPES if not hasattr(lib, n)]
        if missing:
            errors.append("%s: missing symbols %s" % (cand, ", ".join(missing[:5])))
            continue
        for name, (res, args) in _PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        abi = lib.coder_abi_version()
        if abi != ABI_VERSION:
            errors.append("%s: ABI version %d, this package needs %d" % (cand, abi, ABI_VERSION))
            continue
        bad = _struct_sizes_mismatch(lib)
        if bad:
            errors.append("%s: struct layout differs from this package's (%s)" % (cand, bad))
            continue
        return lib, cand
    raise ImportError("coderinfer: cannot load libcoderinfer (set CODERINFER_LIB to its path):\n  "
                      + "\n  ".join(errors))


def _struct_sizes_mismatch(lib):
    for cls, init in ((ModelParams, lib.coder_model_params_init), (SessionParams, lib.coder_session_params_init),
                      (GenParams, lib.coder_gen_params_init), (Result, lib.coder_result_init)):
        s = cls()
        init(ctypes.byref(s))
        if s.size != ctypes.sizeof(cls):
            return "%s: library %d bytes, ctypes %d" % (cls.__name__, s.size, ctypes.sizeof(cls))
    return None


lib, lib_path = load()
