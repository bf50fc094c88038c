// Package coder is the Go binding of libcoderinfer: local GGUF coding models (Qwen2.5-Coder,
// Qwen3, DeepSeek-Coder, CodeLlama) run in-process on the CPU or an NVIDIA GPU.
//
//	m, err := coder.Load("model.gguf")
//	if err != nil { ... }
//	defer m.Close()
//	s, err := m.NewSession()
//	defer s.Close()
//	res, err := s.Generate(ctx, "def fib(n):", coder.GenOptions{MaxTokens: 64})
//
// Threading: a Model is immutable and may be shared by any number of goroutines (Tokenize,
// Detokenize, ChatTokens, FIMTokens and NewSession are safe concurrently). A Session is one
// conversation with its own KV cache: use each Session from one goroutine at a time (a second
// concurrent call returns ErrBusy); give every goroutine its own Session.
//
// Cancellation: every generating method takes a context; when it is cancelled the library is
// told to stop (coder_session_cancel) and the call returns within one token with the partial
// Result and an error matching both ErrCancelled and the context's error. The Session stays
// usable.
//
// Memory: no C pointer is kept by the library past a call; the streaming callback reaches Go
// through a runtime/cgo.Handle. Close releases the C objects; a finalizer is only a safety net.
//
// Building: the package links libcoderinfer through pkg-config (#cgo pkg-config: coderinfer).
// After `make install` nothing else is needed (set PKG_CONFIG_PATH for a non-standard PREFIX).
// To build against a source tree without installing, point PKG_CONFIG_PATH at its build/
// directory, which holds coderinfer-uninstalled.pc (made by `make`); see docs/BINDINGS.md.
package coder

/*
#cgo pkg-config: coderinfer
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// ABIVersion is the libcoderinfer ABI this package was written for (CODER_ABI_VERSION).
const ABIVersion = 0

func unsafePointer(p *C.char) unsafe.Pointer { return unsafe.Pointer(p) }

// Version returns the version string of the loaded library ("0.1.0").
func Version() string { return C.GoString(C.coder_version()) }

// LibABIVersion returns the ABI version of the loaded library.
func LibABIVersion() int { return int(C.coder_abi_version()) }

func checkABI() error {
	if v := LibABIVersion(); v != ABIVersion || int(C.CODER_ABI_VERSION) != ABIVersion {
		return &Error{Status: StatusUnsupported, Msg: fmt.Sprintf(
			"libcoderinfer ABI %d (header %d), this binding needs ABI %d", v, int(C.CODER_ABI_VERSION), ABIVersion)}
	}
	return nil
}

// Option configures Load.
type Option func(*loadConfig)

type loadConfig struct {
	mmap, validate, vocabOnly bool
	gpuLayers, threads        int
}

// WithMmap chooses whether the file is mapped or read into memory (the default: false). Mapping
// loads faster, but a file truncated by another process while mapped kills this process with SIGBUS;
// keep the default for files that may change.
func WithMmap(on bool) Option { return func(c *loadConfig) { c.mmap = on } }

// WithGPULayers sets the number of layers placed on the GPU: -1 (default) as many as fit, 0 none,
// N the last N layers (and the output head), the first ones running on the CPU.
func WithGPULayers(n int) Option { return func(c *loadConfig) { c.gpuLayers = n } }

// WithLoadThreads sets the threads used while loading (0, the default: all cores).
func WithLoadThreads(n int) Option { return func(c *loadConfig) { c.threads = n } }

// WithValidate scans the weights for NaN/Inf while loading (slower).
func WithValidate(on bool) Option { return func(c *loadConfig) { c.validate = on } }

// WithVocabOnly loads only the tokenizer and prompt formats; sessions then fail with ErrState.
func WithVocabOnly(on bool) Option { return func(c *loadConfig) { c.vocabOnly = on } }

// Model is a loaded GGUF model, shared by any number of goroutines and sessions.
type Model struct {
	mu       sync.RWMutex // read: calls using p; write: Close
	p        *C.coder_model
	sessions int // live sessions (under mu write lock or sessMu)
	sessMu   sync.Mutex
}

// Load opens, validates and prepares the model at path. A missing file gives an error matching
// ErrIO, a malformed one ErrFormat or ErrTruncated, an unknown architecture ErrUnsupported.
func Load(path string, opts ...Option) (*Model, error) {
	if err := checkABI(); err != nil {
		return nil, err
	}
	cfg := loadConfig{mmap: false, gpuLayers: -1}
	for _, o := range opts {
		o(&cfg)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var p *C.coder_model
	var msg *C.char
	st := C.go_model_load(cpath, cbool(cfg.mmap), C.int(cfg.gpuLayers), C.int(cfg.threads),
		cbool(cfg.validate), cbool(cfg.vocabOnly), &p, &msg)
	if err := statusErr(st, msg); err != nil {
		return nil, err
	}
	m := &Model{p: p}
	runtime.SetFinalizer(m, func(m *Model) { _ = m.Close() })
	return m, nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Close frees the model. It returns an error matching ErrBusy (and frees nothing) while
// sessions on the model are open. Closing a closed model does nothing.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p == nil {
		return nil
	}
	m.sessMu.Lock()
	n := m.sessions
	m.sessMu.Unlock()
	if n > 0 {
		return &Error{Status: StatusBusy, Msg: fmt.Sprintf("model has %d open sessions: close them first", n)}
	}
	var msg *C.char
	if err := statusErr(C.go_model_free(m.p, &msg), msg); err != nil {
		return err
	}
	m.p = nil
	runtime.SetFinalizer(m, nil)
	return nil
}

// Info describes a loaded model.
type Info struct {
	Arch, Name                                   string
	Layers, Dim, FFNDim, Heads, KVHeads, HeadDim int
	VocabSize, CtxTrain                          int
	Params, WeightBytes                          uint64
	BOS, EOS                                     int32 // -1 when absent
	HasFIM                                       bool
	ChatFormat                                   int // coder_chat_format
	GPULayers                                    int
}

// Info returns the model's hyperparameters and tokenizer facts.
func (m *Model) Info() (Info, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.p == nil {
		return Info{}, ErrClosed
	}
	var ci C.coder_model_info
	var msg *C.char
	if err := statusErr(C.go_model_info(m.p, &ci, &msg), msg); err != nil {
		return Info{}, err
	}
	return Info{
		Arch: C.GoString(&ci.arch[0]), Name: C.GoString(&ci.name[0]),
		Layers: int(ci.n_layers), Dim: int(ci.dim), FFNDim: int(ci.ffn_dim), Heads: int(ci.n_heads),
		KVHeads: int(ci.n_kv_heads), HeadDim: int(ci.head_dim), VocabSize: int(ci.vocab_size),
		CtxTrain: int(ci.n_ctx_train), Params: uint64(ci.n_params), WeightBytes: uint64(ci.weight_bytes),
		BOS: int32(ci.bos_token), EOS: int32(ci.eos_token), HasFIM: ci.has_fim != 0,
		ChatFormat: int(ci.chat_format), GPULayers: int(ci.gpu_layers),
	}, nil
}

// TokenizeFlag modifies Tokenize.
type TokenizeFlag uint

const (
	// AddSpecial adds BOS/EOS where the model's metadata says so.
	AddSpecial TokenizeFlag = C.CODER_TOKENIZE_ADD_SPECIAL
	// ParseSpecial matches control-token text such as <|im_start|>; leave it off for untrusted text.
	ParseSpecial TokenizeFlag = C.CODER_TOKENIZE_PARSE_SPECIAL
)

// Tokenize returns the token ids of text. Without flags no BOS is added and control-token text
// stays plain text.
func (m *Model) Tokenize(text string, flags ...TokenizeFlag) ([]int32, error) {
	var f C.uint
	for _, x := range flags {
		f |= C.uint(x)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.p == nil {
		return nil, ErrClosed
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	return tokenBuffer(len(text)+8, func(buf *C.int32_t, cap C.size_t, n *C.size_t, msg **C.char) C.int {
		return C.go_tokenize(m.p, ctext, C.size_t(len(text)), f, buf, cap, n, msg)
	})
}

// tokenBuffer calls fill with a Go buffer of guess ids, and again with the size the library asks
// for when that was too small.
func tokenBuffer(guess int, fill func(*C.int32_t, C.size_t, *C.size_t, **C.char) C.int) ([]int32, error) {
	for try := 0; try < 2; try++ {
		buf := make([]int32, guess+1) // +1: never a zero-length slice to take &buf[0] of
		var n C.size_t
		var msg *C.char
		st := fill((*C.int32_t)(unsafe.Pointer(&buf[0])), C.size_t(guess), &n, &msg)
		if Status(st) == StatusBufferTooSmall && try == 0 {
			C.free(unsafe.Pointer(msg))
			guess = int(n)
			continue
		}
		if err := statusErr(st, msg); err != nil {
			return nil, err
		}
		return buf[:int(n):int(n)], nil
	}
	return nil, &Error{Status: StatusInternal, Msg: "token count changed between two calls"}
}

// Detokenize returns the text of tokens. With special = true, control tokens are rendered as
// their text (by default they are omitted). The bytes may end inside a UTF-8 character when the
// token sequence is cut inside one.
func (m *Model) Detokenize(tokens []int32, special bool) (string, error) {
	var f C.uint
	if special {
		f = C.CODER_DETOKENIZE_SPECIAL
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.p == nil {
		return "", ErrClosed
	}
	var tp *C.int32_t
	if len(tokens) > 0 {
		tp = (*C.int32_t)(unsafe.Pointer(&tokens[0]))
	}
	guess := 16*len(tokens) + 16
	for try := 0; try < 2; try++ {
		buf := make([]byte, guess)
		var n C.size_t
		var msg *C.char
		st := C.go_detokenize(m.p, tp, C.size_t(len(tokens)), f, (*C.char)(unsafe.Pointer(&buf[0])),
			C.size_t(guess), &n, &msg)
		if Status(st) == StatusBufferTooSmall && try == 0 {
			C.free(unsafe.Pointer(msg))
			guess = int(n) + 1
			continue
		}
		if err := statusErr(st, msg); err != nil {
			return "", err
		}
		return string(buf[:int(n)]), nil
	}
	return "", &Error{Status: StatusInternal, Msg: "text length changed between two calls"}
}

// Message is one chat turn. Role is "system", "user", "assistant" or "tool".
type Message struct {
	Role, Content string
}

// ChatFormat selects a prompt format (coder_chat_format); ChatAuto uses the model's own.
type ChatFormat int

const (
	ChatAuto          ChatFormat = 0
	ChatChatML        ChatFormat = 1
	ChatQwen3         ChatFormat = 2
	ChatLlama3        ChatFormat = 3
	ChatDeepSeekCoder ChatFormat = 4
	ChatLlama2        ChatFormat = 5
	ChatRaw           ChatFormat = 6
)

// ChatTokens renders messages in the model's chat format, ending with the assistant header, as
// token ids. Message text can never inject control tokens (see coder_chat_tokens).
func (m *Model) ChatTokens(messages []Message, format ChatFormat) ([]int32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.p == nil {
		return nil, ErrClosed
	}
	n := len(messages)
	size := C.size_t(n+1) * C.size_t(unsafe.Sizeof(C.coder_chat_message{}))
	arr := (*C.coder_chat_message)(C.calloc(1, size))
	defer C.free(unsafe.Pointer(arr))
	msgs := unsafe.Slice(arr, n+1)
	var strs []*C.char
	defer func() {
		for _, s := range strs {
			C.free(unsafe.Pointer(s))
		}
	}()
	total := 0
	for i, msg := range messages {
		r, c := C.CString(msg.Role), C.CString(msg.Content)
		strs = append(strs, r, c)
		msgs[i].role, msgs[i].content = r, c
		total += len(msg.Role) + len(msg.Content) + 16
	}
	return tokenBuffer(total+64, func(buf *C.int32_t, cap C.size_t, nt *C.size_t, e **C.char) C.int {
		return C.go_chat_tokens(m.p, C.int(format), arr, C.size_t(n), C.CODER_CHAT_ADD_GENERATION_PROMPT,
			buf, cap, nt, e)
	})
}

// FIMFile is a file of the repository shown before the target in a repository-level FIM prompt.
type FIMFile struct {
	Path, Content string
}

// FIMContext optionally makes FIMTokens produce the repository-level form (Qwen2.5-Coder).
type FIMContext struct {
	RepoName   string
	Files      []FIMFile
	TargetPath string
}

// FIMTokens builds the fill-in-the-middle prompt for the hole between prefix and suffix. repo
// may be nil. An error matching ErrUnsupported means the vocabulary has no FIM tokens.
func (m *Model) FIMTokens(prefix, suffix string, repo *FIMContext) ([]int32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.p == nil {
		return nil, ErrClosed
	}
	var strs []*C.char
	cstr := func(s string) *C.char {
		p := C.CString(s)
		strs = append(strs, p)
		return p
	}
	defer func() {
		for _, s := range strs {
			C.free(unsafe.Pointer(s))
		}
	}()
	cp, cs := cstr(prefix), cstr(suffix)
	var repoName, target *C.char
	var files *C.coder_fim_file
	nFiles := 0
	total := len(prefix) + len(suffix) + 32
	if repo != nil {
		if repo.RepoName != "" {
			repoName = cstr(repo.RepoName)
		}
		if repo.TargetPath != "" {
			target = cstr(repo.TargetPath)
		}
		nFiles = len(repo.Files)
		files = (*C.coder_fim_file)(C.calloc(C.size_t(nFiles+1), C.size_t(unsafe.Sizeof(C.coder_fim_file{}))))
		defer C.free(unsafe.Pointer(files))
		fs := unsafe.Slice(files, nFiles+1)
		for i, f := range repo.Files {
			fs[i].path, fs[i].content = cstr(f.Path), cstr(f.Content)
			total += len(f.Path) + len(f.Content) + 8
		}
		total += len(repo.RepoName) + len(repo.TargetPath)
	}
	return tokenBuffer(total, func(buf *C.int32_t, cap C.size_t, n *C.size_t, e **C.char) C.int {
		return C.go_fim_tokens(m.p, cp, cs, repoName, files, C.size_t(nFiles), target, buf, cap, n, e)
	})
}
