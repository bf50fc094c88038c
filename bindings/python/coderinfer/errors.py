"""Exceptions: every library failure raises a CoderError subclass carrying .status (the C
coder_status, a negative int), .status_name and .message (the library's detail, naming the file,
key, tensor or argument at fault)."""
from ._lib import lib


class CoderError(Exception):
    status = None  # set on each subclass; an unknown code keeps the instance's own

    def __init__(self, status, message=""):
        self.status = status
        self.message = message
        self.status_name = lib.coder_status_string(status).decode("utf-8", "replace")
        super().__init__("%s: %s" % (self.status_name, message) if message else self.status_name)


class InvalidArgumentError(CoderError, ValueError): status = -1
class CoderIOError(CoderError, OSError): status = -2
class FormatError(CoderError): status = -3
class TruncatedError(FormatError): status = -4
class UnsupportedError(CoderError): status = -5
class LimitError(CoderError): status = -6
class OutOfMemoryError(CoderError, MemoryError): status = -7
class DeviceError(CoderError): status = -8
class DeviceOutOfMemoryError(DeviceError): status = -9
class DeviceLostError(DeviceError): status = -10
class ContextFullError(CoderError): status = -11
class CancelledError(CoderError): status = -12
class BusyError(CoderError): status = -13
class StateError(CoderError): status = -14
class BufferTooSmallError(CoderError): status = -15
class NumericError(CoderError): status = -16
class TemplateError(CoderError): status = -17
class InternalError(CoderError): status = -18

_BY_STATUS = {c.status: c for c in (
    InvalidArgumentError, CoderIOError, FormatError, TruncatedError, UnsupportedError, LimitError,
    OutOfMemoryError, DeviceError, DeviceOutOfMemoryError, DeviceLostError, ContextFullError, CancelledError,
    BusyError, StateError, BufferTooSmallError, NumericError, TemplateError, InternalError)}


def error(status, message=None):
    """The exception for a failed call. Read right after the call, on the same thread:
    coder_last_error() is thread-local."""
    if message is None:
        message = (lib.coder_last_error() or b"").decode("utf-8", "replace")
    cls = _BY_STATUS.get(status, CoderError)
    e = cls.__new__(cls)
    CoderError.__init__(e, status, message)
    return e


def check(status):
    if status != 0:
        raise error(status)
