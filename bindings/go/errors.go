package coder

// #include <stdlib.h>
// #include <coderinfer.h>
import "C"

import (
	"errors"
	"fmt"
)

// Status is a libcoderinfer status code (coder_status). The values are part of the library's ABI.
type Status int

// The status codes of include/coderinfer.h.
const (
	StatusOK             Status = 0
	StatusInvalidArg     Status = -1
	StatusIO             Status = -2
	StatusFormat         Status = -3
	StatusTruncated      Status = -4
	StatusUnsupported    Status = -5
	StatusLimit          Status = -6
	StatusNoMem          Status = -7
	StatusDevice         Status = -8
	StatusDeviceNoMem    Status = -9
	StatusDeviceLost     Status = -10
	StatusContextFull    Status = -11
	StatusCancelled      Status = -12
	StatusBusy           Status = -13
	StatusState          Status = -14
	StatusBufferTooSmall Status = -15
	StatusNumeric        Status = -16
	StatusTemplate       Status = -17
	StatusInternal       Status = -18
)

// String returns the library's name for the status, e.g. "CODER_ERR_IO: i/o error".
func (s Status) String() string {
	return C.GoString(C.coder_status_string(C.coder_status(s)))
}

// Error is the error every function of this package returns for a library failure: the status
// and the library's detail message (which names the file, key, tensor or argument at fault).
//
// Branch on it with errors.Is against the sentinels (errors.Is(err, coder.ErrIO)) or with
// errors.As to read Status and Msg.
type Error struct {
	Status Status
	Msg    string
	cause  error // for a cancellation: the context's error
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return "coderinfer: " + e.Status.String()
	}
	return fmt.Sprintf("coderinfer: %s: %s", e.Status.String(), e.Msg)
}

// Is reports whether target is an *Error with the same status; so errors.Is(err, coder.ErrIO)
// holds for every I/O failure whatever its message.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Status == e.Status
	}
	return false
}

// Unwrap returns the cause of a cancellation (context.Canceled or context.DeadlineExceeded), so
// errors.Is(err, context.Canceled) holds after a context cancelled a generation.
func (e *Error) Unwrap() error { return e.cause }

// Sentinels for errors.Is. Each matches every *Error of its status.
var (
	ErrInvalidArg  = &Error{Status: StatusInvalidArg}
	ErrIO          = &Error{Status: StatusIO}
	ErrFormat      = &Error{Status: StatusFormat}
	ErrTruncated   = &Error{Status: StatusTruncated}
	ErrUnsupported = &Error{Status: StatusUnsupported}
	ErrLimit       = &Error{Status: StatusLimit}
	ErrNoMem       = &Error{Status: StatusNoMem}
	ErrDevice      = &Error{Status: StatusDevice}
	ErrDeviceNoMem = &Error{Status: StatusDeviceNoMem}
	ErrDeviceLost  = &Error{Status: StatusDeviceLost}
	ErrContextFull = &Error{Status: StatusContextFull}
	ErrCancelled   = &Error{Status: StatusCancelled}
	ErrBusy        = &Error{Status: StatusBusy}
	ErrState       = &Error{Status: StatusState}
	ErrNumeric     = &Error{Status: StatusNumeric}
	ErrTemplate    = &Error{Status: StatusTemplate}
	ErrInternal    = &Error{Status: StatusInternal}
	// ErrClosed is returned by methods called on a closed Model or Session (status CODER_ERR_STATE).
	ErrClosed = &Error{Status: StatusState, Msg: "use of a closed object"}
)

// statusErr turns a C status and the malloc'd message from a shim wrapper into an error (nil
// for CODER_OK), freeing the message.
func statusErr(st C.int, msg *C.char) error {
	if msg != nil {
		defer C.free(unsafePointer(msg))
	}
	if st == 0 {
		return nil
	}
	e := &Error{Status: Status(st)}
	if msg != nil {
		e.Msg = C.GoString(msg)
	}
	return e
}
