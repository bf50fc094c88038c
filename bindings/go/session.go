package coder

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// SessionOption configures NewSession.
type SessionOption func(*sessionConfig)

type sessionConfig struct{ nCtx, nBatch, threads, kvType int }

// WithContextSize sets the context length in tokens (default min(training length, 4096)).
func WithContextSize(n int) SessionOption { return func(c *sessionConfig) { c.nCtx = n } }

// WithBatch sets the number of prompt tokens evaluated per step (default 512).
func WithBatch(n int) SessionOption { return func(c *sessionConfig) { c.nBatch = n } }

// WithThreads sets the CPU threads of the session (default all cores).
func WithThreads(n int) SessionOption { return func(c *sessionConfig) { c.threads = n } }

// KV cache element types (coder_kv_type).
const (
	KVF16      = 0
	KVF32      = 1
	KVQ8_0     = 2
	KVQ8_0Q4_0 = 3 // K in Q8_0, V in Q4_0
)

// WithKVType sets the KV cache type (KVF16 default, KVF32, KVQ8_0, KVQ8_0Q4_0).
func WithKVType(t int) SessionOption { return func(c *sessionConfig) { c.kvType = t } }

// Session is a KV cache and the tokens in it: one conversation. Use it from one goroutine at a
// time; give every goroutine its own.
type Session struct {
	mu    sync.Mutex // held while a call uses p
	pmu   sync.Mutex // guards p for cancelRunning, which runs without mu
	p     *C.coder_session
	model *Model
}

// NewSession creates a session on the model. Close every session before the model.
func (m *Model) NewSession(opts ...SessionOption) (*Session, error) {
	cfg := sessionConfig{kvType: -1}
	for _, o := range opts {
		o(&cfg)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.p == nil {
		return nil, ErrClosed
	}
	var p *C.coder_session
	var msg *C.char
	st := C.go_session_new(m.p, C.int32_t(cfg.nCtx), C.int32_t(cfg.nBatch), C.int32_t(cfg.threads),
		C.int32_t(cfg.kvType), &p, &msg)
	if err := statusErr(st, msg); err != nil {
		return nil, err
	}
	m.sessMu.Lock()
	m.sessions++
	m.sessMu.Unlock()
	s := &Session{p: p, model: m}
	runtime.SetFinalizer(s, func(s *Session) { _ = s.Close() })
	return s, nil
}

// Close frees the session. A generation running in another goroutine is cancelled first and
// Close waits for it to return. Closing a closed session does nothing. Do not call Close from the
// streaming callback of the same session.
func (s *Session) Close() error {
	if !s.mu.TryLock() {
		s.cancelRunning()
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if s.p == nil {
		return nil
	}
	C.coder_session_free(s.p)
	s.pmu.Lock()
	s.p = nil
	s.pmu.Unlock()
	s.model.sessMu.Lock()
	s.model.sessions--
	s.model.sessMu.Unlock()
	runtime.SetFinalizer(s, nil)
	return nil
}

// cancelRunning asks a generation that holds s.mu to stop (coder_session_cancel is async-safe).
func (s *Session) cancelRunning() {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.p != nil {
		C.coder_session_cancel(s.p)
	}
}

// lock takes the session for one call: ErrBusy when another goroutine is inside it.
func (s *Session) lock() error {
	if !s.mu.TryLock() {
		return &Error{Status: StatusBusy, Msg: "session is in use by another goroutine"}
	}
	if s.p == nil {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Reset forgets every token held by the session.
func (s *Session) Reset() error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	var msg *C.char
	return statusErr(C.go_session_reset(s.p, &msg), msg)
}

// NPast returns the number of tokens the session holds, NCtx its context length.
func (s *Session) NPast() int {
	if err := s.lock(); err != nil {
		return 0
	}
	defer s.mu.Unlock()
	return int(C.coder_session_n_past(s.p))
}

// NCtx returns the session's context length in tokens.
func (s *Session) NCtx() int {
	if err := s.lock(); err != nil {
		return 0
	}
	defer s.mu.Unlock()
	return int(C.coder_session_n_ctx(s.p))
}

// RandomSeed as GenOptions.Seed draws a fresh seed for each call.
const RandomSeed = ^uint64(0)

// GenOptions controls one generation. The zero value is greedy decoding of up to 256 tokens with
// seed 0, starting from an empty session: deterministic. Zero fields are "off"; DefaultGenOptions
// returns the library's sampling defaults (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05).
type GenOptions struct {
	MaxTokens        int     // 0: 256; -1: until end of generation or the context is full
	Temperature      float32 // <= 0: greedy (argmax)
	TopK             int     // <= 0: off
	TopP             float32 // 0 or 1: off
	MinP             float32 // 0: off
	RepeatPenalty    float32 // 0 or 1: off
	RepeatLastN      int     // penalty window; 0: 64
	FrequencyPenalty float32
	PresencePenalty  float32
	Seed             uint64   // fixed seed => same tokens; RandomSeed for a random one
	Stop             []string // generation ends before the first of these strings

	// Stream, when set, receives each piece of text as it is produced (complete UTF-8 characters;
	// the pieces concatenate to Result.Text). Returning a non-nil error stops the generation,
	// and Generate returns the partial Result with that error. Runs on the calling goroutine's
	// stack (inside the C call): do not call back into this Session from it.
	Stream func(piece string) error

	// Continue appends the prompt to the tokens the session already holds (a conversation that
	// goes on, or a prompt that continues a previous result). By default the prompt is the
	// whole context, as if the session were reset, but the longest prefix the session already
	// holds is reused instead of evaluated again (CODER_PROMPT_REUSE).
	Continue bool

	// RawTokens: tokenize the prompt without BOS and without matching control-token text.
	// By default BOS is added (where the model asks for it) and <|...|> text is recognised.
	RawTokens bool

	// Lookup (greedy only, 0-16): drafts up to this many tokens from where the last tokens
	// occurred before in the context and keeps those greedy decoding agrees with (prompt lookup:
	// rewriting code the prompt holds goes several tokens per step; same output). 0: off.
	Lookup int
}

// DefaultGenOptions returns the library's own defaults (coder_gen_params_init), with Seed 0.
func DefaultGenOptions() GenOptions {
	var gp C.coder_gen_params
	C.coder_gen_params_init(&gp)
	return GenOptions{
		MaxTokens: int(gp.max_tokens), Temperature: float32(gp.temperature), TopK: int(gp.top_k),
		TopP: float32(gp.top_p), MinP: float32(gp.min_p), RepeatPenalty: float32(gp.repeat_penalty),
		RepeatLastN: int(gp.repeat_last_n), FrequencyPenalty: float32(gp.frequency_penalty),
		PresencePenalty: float32(gp.presence_penalty),
	}
}

// StopReason says why a generation ended (coder_stop_reason).
type StopReason int

const (
	StopNone        StopReason = 0
	StopEOG         StopReason = 1 // the model emitted an end-of-generation token
	StopLength      StopReason = 2 // MaxTokens reached
	StopString      StopReason = 3 // a stop string matched
	StopContextFull StopReason = 4 // the context is full
	StopCancelled   StopReason = 5 // the context was cancelled or Stream returned an error
	StopError       StopReason = 6
)

func (r StopReason) String() string {
	names := [...]string{"none", "eog", "length", "stop_string", "context_full", "cancelled", "error"}
	if r >= 0 && int(r) < len(names) {
		return names[r]
	}
	return fmt.Sprintf("StopReason(%d)", int(r))
}

// Stats are the timings of one generation.
type Stats struct {
	PromptTokens, CachedTokens, GeneratedTokens int
	PrefillMs, DecodeMs                         float64
	PrefillTPS, DecodeTPS                       float64
	DraftedTokens, AcceptedTokens               int // Lookup: tokens proposed and kept
}

// Result is a completion: its text, the generated token ids (without the end-of-generation
// token), why it stopped and how long it took.
type Result struct {
	Text       string
	Tokens     []int32
	StopReason StopReason
	Stats      Stats
}

// genState is what the streaming callback reaches through its cgo.Handle.
type genState struct {
	fn       func(string) error
	err      error       // the error Stream returned
	panicked interface{} // a panic inside Stream, re-raised after the C call returns
}

//export goPiece
func goPiece(piece *C.char, n C.size_t, h C.uintptr_t) (stop C.int) {
	st := cgo.Handle(h).Value().(*genState)
	defer func() {
		// A panic must not unwind through the C frames: stop the generation, re-panic in Go.
		if p := recover(); p != nil {
			st.panicked = p
			stop = 1
		}
	}()
	if err := st.fn(C.GoStringN(piece, C.int(n))); err != nil {
		st.err = err
		return 1
	}
	return 0
}

func (o *GenOptions) toC(gp *C.coder_gen_params) {
	C.coder_gen_params_init(gp)
	gp.max_tokens = C.int32_t(o.MaxTokens)
	if o.MaxTokens == 0 {
		gp.max_tokens = 256
	}
	gp.temperature = C.float(o.Temperature)
	gp.top_k = C.int32_t(o.TopK)
	gp.top_p = C.float(o.TopP)
	if o.TopP == 0 {
		gp.top_p = 1
	}
	gp.min_p = C.float(o.MinP)
	gp.repeat_penalty = C.float(o.RepeatPenalty)
	if o.RepeatPenalty == 0 {
		gp.repeat_penalty = 1
	}
	gp.repeat_last_n = C.int32_t(o.RepeatLastN)
	if o.RepeatLastN == 0 {
		gp.repeat_last_n = 64
	}
	gp.frequency_penalty = C.float(o.FrequencyPenalty)
	gp.presence_penalty = C.float(o.PresencePenalty)
	gp.seed = C.uint64_t(o.Seed)
	gp.lookup_draft = C.int32_t(o.Lookup)
	if o.RawTokens {
		gp.tokenize_flags = 0
	}
}

// Generate tokenizes prompt, evaluates it and generates a completion. See GenOptions for the
// sampling, streaming and whether the session is reset first. When ctx is cancelled the library
// stops within one token: Generate returns the partial Result (StopCancelled) and an error
// matching ErrCancelled and ctx.Err(); the session remains usable.
func (s *Session) Generate(ctx context.Context, prompt string, opts GenOptions) (Result, error) {
	return s.run(ctx, &prompt, nil, opts)
}

// GenerateTokens is Generate with a prompt that is already token ids.
func (s *Session) GenerateTokens(ctx context.Context, prompt []int32, opts GenOptions) (Result, error) {
	if prompt == nil {
		prompt = []int32{}
	}
	return s.run(ctx, nil, prompt, opts)
}

// Chat formats messages in the model's chat format (ending with the assistant header) and
// generates the assistant's reply, in a fresh session state unless opts.Continue.
func (s *Session) Chat(ctx context.Context, messages []Message, opts GenOptions) (Result, error) {
	toks, err := s.model.ChatTokens(messages, ChatAuto)
	if err != nil {
		return Result{}, err
	}
	return s.run(ctx, nil, toks, opts)
}

// FIM generates the middle between prefix and suffix (fill-in-the-middle); repo may be nil.
// The session is reset first unless opts.Continue.
func (s *Session) FIM(ctx context.Context, prefix, suffix string, repo *FIMContext, opts GenOptions) (Result, error) {
	toks, err := s.model.FIMTokens(prefix, suffix, repo)
	if err != nil {
		return Result{}, err
	}
	return s.run(ctx, nil, toks, opts)
}

func (s *Session) run(ctx context.Context, prompt *string, toks []int32, opts GenOptions) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{StopReason: StopCancelled}, &Error{Status: StatusCancelled, Msg: "context done before the call", cause: err}
	}
	if err := s.lock(); err != nil {
		return Result{}, err
	}
	defer s.mu.Unlock()

	var gp C.coder_gen_params
	opts.toC(&gp)
	// Stop strings live in C memory for the duration of the call only.
	if len(opts.Stop) > 0 {
		arr := (**C.char)(C.calloc(C.size_t(len(opts.Stop)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		defer C.free(unsafe.Pointer(arr))
		stops := unsafe.Slice(arr, len(opts.Stop))
		for i, str := range opts.Stop {
			stops[i] = C.CString(str)
			defer C.free(unsafe.Pointer(stops[i]))
		}
		gp.stop = arr
		gp.n_stop = C.size_t(len(opts.Stop))
	}

	var msg *C.char
	if !opts.Continue {
		// The prompt is the whole context, as after a reset, but the longest prefix the session
		// already holds (a system prompt, repository context) is not evaluated again.
		gp.prompt_mode = C.CODER_PROMPT_REUSE
	}

	var handle C.uintptr_t
	var state *genState
	if opts.Stream != nil {
		state = &genState{fn: opts.Stream}
		h := cgo.NewHandle(state)
		defer h.Delete()
		handle = C.uintptr_t(h)
	}

	// The watcher turns ctx cancellation into coder_session_cancel. A cancel that reaches an idle
	// session is forgotten when the next call starts, so it repeats until the call has returned:
	// that closes the window between starting the watcher and the C call starting.
	done := make(chan struct{})
	var wg sync.WaitGroup
	if ctx.Done() != nil {
		wg.Add(1)
		p := s.p
		go func() {
			defer wg.Done()
			select {
			case <-done:
				return
			case <-ctx.Done():
			}
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			for {
				C.coder_session_cancel(p)
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		}()
	}

	var r C.coder_result
	C.coder_result_init(&r)
	var st C.int
	if prompt != nil {
		cp := C.CString(*prompt)
		st = C.go_generate(s.p, cp, C.size_t(len(*prompt)), nil, 0, &gp, handle, &r, &msg)
		C.free(unsafe.Pointer(cp))
	} else {
		var tp *C.int32_t
		if len(toks) > 0 {
			tp = (*C.int32_t)(unsafe.Pointer(&toks[0]))
		}
		st = C.go_generate(s.p, nil, 0, tp, C.size_t(len(toks)), &gp, handle, &r, &msg)
	}
	close(done)
	wg.Wait()

	res := Result{
		Text:       C.GoStringN(r.text, C.int(r.text_len)),
		StopReason: StopReason(r.stop_reason),
		Stats: Stats{
			PromptTokens: int(r.stats.n_prompt), CachedTokens: int(r.stats.n_cached),
			GeneratedTokens: int(r.stats.n_generated),
			PrefillMs:       float64(r.stats.prefill_ms), DecodeMs: float64(r.stats.decode_ms),
			PrefillTPS: float64(r.stats.prefill_tps), DecodeTPS: float64(r.stats.decode_tps),
			DraftedTokens: int(r.stats.n_drafted), AcceptedTokens: int(r.stats.n_accepted),
		},
	}
	if r.n_tokens > 0 {
		res.Tokens = append([]int32(nil), unsafe.Slice((*int32)(unsafe.Pointer(r.tokens)), int(r.n_tokens))...)
	}
	C.coder_result_clear(&r)

	if state != nil && state.panicked != nil {
		panic(state.panicked)
	}
	if err := statusErr(st, msg); err != nil {
		return res, err
	}
	if res.StopReason == StopCancelled {
		if state != nil && state.err != nil {
			return res, state.err
		}
		cause := ctx.Err()
		msg := fmt.Sprintf("generation cancelled after %d tokens", len(res.Tokens))
		if cause != nil {
			msg += ": " + cause.Error()
		}
		return res, &Error{Status: StatusCancelled, Msg: msg, cause: cause}
	}
	return res, nil
}
