"""coderinfer: Python binding of libcoderinfer (local GGUF coding models, in-process; ctypes only).

    import coderinfer
    with coderinfer.Model("model.gguf") as model, model.session() as s:
        print(s.generate("def fib(n):", max_tokens=64, temperature=0).text)
        for piece in s.generate("def fib(n):", stream=True):
            print(piece, end="", flush=True)

See docs/BINDINGS.md. The shared library is found through $CODERINFER_LIB, this package's
directory, or the system; its ABI version is checked at import.
"""
from ._lib import ABI_VERSION, lib as _clib, lib_path
from ._api import Model, Result, Session, Stream
from .errors import (BufferTooSmallError, BusyError, CancelledError, CoderError, CoderIOError, ContextFullError,
                     DeviceError, DeviceLostError, DeviceOutOfMemoryError, FormatError, InternalError,
                     InvalidArgumentError, LimitError, NumericError, OutOfMemoryError, StateError, TemplateError,
                     TruncatedError, UnsupportedError)

__version__ = "0.1.0"


def lib_version():
    """Version string of the loaded libcoderinfer ("0.1.0")."""
    return _clib.coder_version().decode()


__all__ = ["Model", "Session", "Stream", "Result", "lib_version", "lib_path", "ABI_VERSION", "CoderError",
           "InvalidArgumentError", "CoderIOError", "FormatError", "TruncatedError", "UnsupportedError",
           "LimitError", "OutOfMemoryError", "DeviceError", "DeviceOutOfMemoryError", "DeviceLostError",
           "ContextFullError", "CancelledError", "BusyError", "StateError", "BufferTooSmallError",
           "NumericError", "TemplateError", "InternalError"]
