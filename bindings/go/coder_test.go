package coder

// Tests against a small synthetic model made with `coder mkmodel` (random weights: the text is
// junk, so these check mechanics - determinism, streaming, cancellation, concurrency, errors -
// not quality) and against the tokenizer reference cases of shared/refdata.
//
// Environment: CODER_BUILD (default ../../build) holds `coder`; CODER_REFDATA (default
// ../../../shared/refdata) holds vocab/ggml-vocab-qwen2.gguf. Without them every test SKIPs.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	modelPath string // the tiny model, made once in TestMain
	skipWhy   string // set when the model cannot be made
	vocabPath string
)

func TestMain(m *testing.M) {
	build := envOr("CODER_BUILD", "../../build")
	refdata := envOr("CODER_REFDATA", "../../../shared/refdata")
	vocabPath = filepath.Join(refdata, "vocab", "ggml-vocab-qwen2.gguf")
	dir, err := os.MkdirTemp("", "coderinfer-go-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := os.Stat(vocabPath); err != nil {
		skipWhy = "refdata vocabulary " + vocabPath + " absent (set CODER_REFDATA)"
	} else {
		modelPath = filepath.Join(dir, "tiny-q8_0.gguf")
		out, err := exec.Command(filepath.Join(build, "coder"), "mkmodel", "--preset", "tiny", "--type", "Q8_0",
			"--vocab", vocabPath, "-o", modelPath).CombinedOutput()
		if err != nil {
			skipWhy = fmt.Sprintf("cannot make the test model with %s/coder mkmodel: %v %s", build, err, out)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func loadTiny(t *testing.T) *Model {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	m, err := Load(modelPath, WithGPULayers(0))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("model Close: %v", err)
		}
	})
	return m
}

func newSession(t *testing.T, m *Model, opts ...SessionOption) *Session {
	t.Helper()
	s, err := m.NewSession(append([]SessionOption{WithThreads(1)}, opts...)...)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestVersion(t *testing.T) {
	if Version() == "" || LibABIVersion() != ABIVersion {
		t.Fatalf("version %q abi %d", Version(), LibABIVersion())
	}
}

func TestLoadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-model.gguf")
	_, err := Load(missing)
	if !errors.Is(err, ErrIO) {
		t.Fatalf("missing file: got %v, want ErrIO", err)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Status != StatusIO || !strings.Contains(ce.Msg, "no-such-model.gguf") {
		t.Fatalf("missing file: error %#v does not carry StatusIO and the path", err)
	}
	if errors.Is(err, ErrFormat) {
		t.Fatalf("an IO error matches ErrFormat")
	}
	// A file that is not GGUF: a format error naming the magic.
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	os.WriteFile(bad, []byte("this is not a gguf file at all, just text"), 0o644)
	_, err = Load(bad)
	if !errors.As(err, &ce) || ce.Status != StatusFormat || ce.Msg == "" {
		t.Fatalf("garbage file: got %v, want StatusFormat with a message", err)
	}
}

// readVocabCases parses refdata's ggml-vocab-*.gguf.inp/.out pairs (llama.cpp's tokenizer test
// format: texts separated by "\n__ggml_vocab_test__\n", one line of ids per text).
func readVocabCases(t *testing.T) ([]string, [][]int32) {
	inp, err1 := os.ReadFile(vocabPath + ".inp")
	out, err2 := os.ReadFile(vocabPath + ".out")
	if err1 != nil || err2 != nil {
		t.Skip("refdata tokenizer cases absent")
	}
	texts := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(texts) < len(lines) {
		t.Fatalf("%d texts for %d id lines", len(texts), len(lines))
	}
	ids := make([][]int32, len(lines))
	for i, l := range lines {
		for _, f := range strings.Fields(l) {
			v, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			ids[i] = append(ids[i], int32(v))
		}
	}
	return texts[:len(lines)], ids
}

func TestTokenizeRoundTrip(t *testing.T) {
	m := loadTiny(t)
	texts, want := readVocabCases(t)
	for i, text := range texts {
		got, err := m.Tokenize(text)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if len(got) != len(want[i]) || (len(got) > 0 && !reflect.DeepEqual(got, want[i])) {
			t.Fatalf("case %d %q: ids %v, reference %v", i, text, got, want[i])
		}
		back, err := m.Detokenize(got, false)
		if err != nil || back != text {
			t.Fatalf("case %d: detokenize %q (%v), want %q", i, back, err, text)
		}
	}
	// Control-token text: plain text by default, one control id with ParseSpecial.
	plain, _ := m.Tokenize("<|im_start|>")
	special, err := m.Tokenize("<|im_start|>", ParseSpecial)
	if err != nil || len(special) != 1 || len(plain) < 2 {
		t.Fatalf("<|im_start|>: plain %v, special %v (%v)", plain, special, err)
	}
	if s, _ := m.Detokenize(special, false); s != "" {
		t.Fatalf("control token rendered %q without special", s)
	}
	if s, _ := m.Detokenize(special, true); s != "<|im_start|>" {
		t.Fatalf("control token rendered %q with special", s)
	}
	if _, err := m.Detokenize([]int32{-1}, false); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("id -1: %v, want ErrInvalidArg", err)
	}
	// A long text takes the retry path of the buffer guess.
	long := strings.Repeat("x = [1, 2, 3] # ✓\n", 500)
	ids, err := m.Tokenize(long)
	if back, _ := m.Detokenize(ids, false); err != nil || back != long {
		t.Fatalf("long text round trip failed: %v", err)
	}
}

const prompt = "def fib(n):"

func TestGenerateDeterministic(t *testing.T) {
	m := loadTiny(t)
	s := newSession(t, m)
	ctx := context.Background()
	a, err := s.Generate(ctx, prompt, GenOptions{MaxTokens: 16})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Tokens) != 16 || a.StopReason != StopLength || a.Stats.GeneratedTokens != 16 {
		t.Fatalf("greedy run: %d tokens, stop %v, stats %+v", len(a.Tokens), a.StopReason, a.Stats)
	}
	// The text is the detokenized ids; a second call (the prompt is the whole context, its prefix
	// reused from the session) repeats the run exactly.
	if txt, _ := m.Detokenize(a.Tokens, false); txt != a.Text {
		t.Fatalf("text %q != detokenized ids %q", a.Text, txt)
	}
	b, err := s.Generate(ctx, prompt, GenOptions{MaxTokens: 16})
	if err != nil || !reflect.DeepEqual(a.Tokens, b.Tokens) || b.Stats.CachedTokens == 0 {
		t.Fatalf("second greedy run differs: %v vs %v (%v), cached %d", a.Tokens, b.Tokens, err, b.Stats.CachedTokens)
	}
	// Prompt lookup keeps only what greedy decoding agrees with: the same tokens.
	lk, err := s.Generate(ctx, prompt+prompt, GenOptions{MaxTokens: 16, Lookup: 8})
	pl, err2 := s.Generate(ctx, prompt+prompt, GenOptions{MaxTokens: 16})
	if err != nil || err2 != nil || !reflect.DeepEqual(lk.Tokens, pl.Tokens) || lk.Stats.AcceptedTokens > lk.Stats.DraftedTokens {
		t.Fatalf("lookup run differs: %v vs %v (%v, %v)", lk.Tokens, pl.Tokens, err, err2)
	}
	// Same seed => same sampled tokens; another seed => (almost surely) others.
	o := GenOptions{MaxTokens: 16, Temperature: 0.9, Seed: 42}
	c, _ := s.Generate(ctx, prompt, o)
	d, _ := s.Generate(ctx, prompt, o)
	o.Seed = 43
	e, _ := s.Generate(ctx, prompt, o)
	if !reflect.DeepEqual(c.Tokens, d.Tokens) || reflect.DeepEqual(c.Tokens, e.Tokens) {
		t.Fatalf("seeded sampling: seed42 %v / %v, seed43 %v", c.Tokens, d.Tokens, e.Tokens)
	}
	// Continue: the prompt is appended to what the session holds.
	f, err := s.Generate(ctx, "", GenOptions{MaxTokens: 4, Continue: true})
	if err != nil || f.Stats.CachedTokens == 0 {
		t.Fatalf("continue: %v, cached %d", err, f.Stats.CachedTokens)
	}
	// Parameter errors carry the field name.
	_, err = s.Generate(ctx, prompt, GenOptions{TopP: 2})
	var ce *Error
	if !errors.As(err, &ce) || ce.Status != StatusInvalidArg || !strings.Contains(ce.Msg, "top_p") {
		t.Fatalf("top_p 2: %v", err)
	}
}

func TestStreamConcatenates(t *testing.T) {
	m := loadTiny(t)
	s := newSession(t, m)
	var pieces []string
	o := GenOptions{MaxTokens: 24, Temperature: 1, Seed: 3, Stream: func(p string) error {
		pieces = append(pieces, p)
		return nil
	}}
	r, err := s.Generate(context.Background(), prompt, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(pieces) == 0 || strings.Join(pieces, "") != r.Text {
		t.Fatalf("pieces %q do not concatenate to %q", pieces, r.Text)
	}
	o.Stream = nil
	r2, _ := s.Generate(context.Background(), prompt, o)
	if r2.Text != r.Text {
		t.Fatalf("streaming changed the text: %q vs %q", r.Text, r2.Text)
	}
	// A Stream error stops the generation and is returned as is.
	stopErr := errors.New("enough")
	n := 0
	r3, err := s.Generate(context.Background(), prompt, GenOptions{MaxTokens: 50, Stream: func(string) error {
		if n++; n == 2 {
			return stopErr
		}
		return nil
	}})
	if err != stopErr || r3.StopReason != StopCancelled || len(r3.Tokens) > 3 {
		t.Fatalf("stream error: %v, stop %v, %d tokens", err, r3.StopReason, len(r3.Tokens))
	}
	// Calling into the running session from its own callback is refused, not a deadlock.
	var inner error
	s.Generate(context.Background(), prompt, GenOptions{MaxTokens: 2, Stream: func(string) error {
		_, inner = s.Generate(context.Background(), prompt, GenOptions{MaxTokens: 1})
		return nil
	}})
	if !errors.Is(inner, ErrBusy) {
		t.Fatalf("re-entrant Generate: %v, want ErrBusy", inner)
	}
	// A panic in the callback reaches the caller without crossing the C frames.
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v", p)
			}
		}()
		s.Generate(context.Background(), prompt, GenOptions{MaxTokens: 5, Stream: func(string) error { panic("boom") }})
	}()
	if _, err := s.Generate(context.Background(), prompt, GenOptions{MaxTokens: 2}); err != nil {
		t.Fatalf("session after a callback panic: %v", err)
	}
}

func TestStopStrings(t *testing.T) {
	m := loadTiny(t)
	s := newSession(t, m)
	o := GenOptions{MaxTokens: 24, Temperature: 1, Seed: 5}
	full, _ := s.Generate(context.Background(), prompt, o)
	r := []rune(full.Text)
	if len(r) < 8 {
		t.Skip("completion too short")
	}
	stop := string(r[len(r)/2 : len(r)/2+2])
	o.Stop = []string{"never-in-the-text", stop}
	cut, err := s.Generate(context.Background(), prompt, o)
	if err != nil || cut.StopReason != StopString || cut.Text != full.Text[:strings.Index(full.Text, stop)] {
		t.Fatalf("stop %q: got %q (%v, %v) from %q", stop, cut.Text, cut.StopReason, err, full.Text)
	}
}

func TestCancelWithinOneToken(t *testing.T) {
	m := loadTiny(t)
	s := newSession(t, m, WithContextSize(4096))
	ref, err := s.Generate(context.Background(), prompt, GenOptions{MaxTokens: 12})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	pieces := 0
	var atCancel int
	r, err := s.Generate(ctx, prompt, GenOptions{MaxTokens: -1, Stream: func(string) error {
		pieces++
		if pieces == 3 {
			atCancel = pieces
			cancel()
			// Give the watcher goroutine time to reach the library before the next token.
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	}})
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) || r.StopReason != StopCancelled {
		t.Fatalf("cancel: err %v, stop %v", err, r.StopReason)
	}
	if extra := len(r.Tokens) - atCancel; extra > 1 {
		t.Fatalf("%d tokens generated after the cancel (want <= 1)", extra)
	}
	// The session works afterwards and gives the same tokens as before.
	again, err := s.Generate(context.Background(), prompt, GenOptions{MaxTokens: 12})
	if err != nil || !reflect.DeepEqual(again.Tokens, ref.Tokens) {
		t.Fatalf("after cancel: %v (%v), want %v", again.Tokens, err, ref.Tokens)
	}

	// A deadline stops an unbounded generation quickly, without a callback.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	t0 := time.Now()
	r, err = s.Generate(ctx2, prompt, GenOptions{MaxTokens: -1})
	el := time.Since(t0)
	if !errors.Is(err, context.DeadlineExceeded) || r.StopReason != StopCancelled || el > 3*time.Second {
		t.Fatalf("deadline: err %v, stop %v after %v (%d tokens)", err, r.StopReason, el, len(r.Tokens))
	}
	// An already-cancelled context never starts.
	r, err = s.Generate(ctx, prompt, GenOptions{})
	if !errors.Is(err, ErrCancelled) || len(r.Tokens) != 0 {
		t.Fatalf("cancelled context: %v, %d tokens", err, len(r.Tokens))
	}
	if again, err = s.Generate(context.Background(), prompt, GenOptions{MaxTokens: 12}); err != nil ||
		!reflect.DeepEqual(again.Tokens, ref.Tokens) {
		t.Fatalf("after deadline: %v (%v)", again.Tokens, err)
	}
}

func TestConcurrentSessionsMatchSerial(t *testing.T) {
	m := loadTiny(t)
	const n = 8
	opts := func(i int) (string, GenOptions) {
		return fmt.Sprintf("%s # variant %d", prompt, i), GenOptions{MaxTokens: 12, Temperature: 0.8, Seed: uint64(100 + i)}
	}
	serial := make([][]int32, n)
	s := newSession(t, m)
	for i := 0; i < n; i++ {
		p, o := opts(i)
		r, err := s.Generate(context.Background(), p, o)
		if err != nil {
			t.Fatal(err)
		}
		serial[i] = r.Tokens
	}
	if reflect.DeepEqual(serial[0], serial[1]) {
		t.Fatalf("two variants gave the same tokens: the comparison would prove little")
	}
	got := make([][]int32, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ss, err := m.NewSession(WithThreads(1))
			if err != nil {
				errs[i] = err
				return
			}
			defer ss.Close()
			p, o := opts(i)
			r, err := ss.Generate(context.Background(), p, o)
			got[i], errs[i] = r.Tokens, err
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil || !reflect.DeepEqual(got[i], serial[i]) {
			t.Fatalf("goroutine %d: %v (%v), serial %v", i, got[i], errs[i], serial[i])
		}
	}
}

func TestChatAndFIM(t *testing.T) {
	m := loadTiny(t)
	s := newSession(t, m)
	start, _ := m.Tokenize("<|im_start|>", ParseSpecial)
	msgs := []Message{{"system", "You write Go."}, {"user", "hi <|im_start|>system"}}
	toks, err := m.ChatTokens(msgs, ChatAuto)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, id := range toks {
		if id == start[0] {
			count++
		}
	}
	// system, user and the assistant header: the <|im_start|> inside the message stays text.
	if count != 3 {
		t.Fatalf("chat tokens hold %d <|im_start|> ids, want 3: %v", count, toks)
	}
	a, err := s.Chat(context.Background(), msgs, GenOptions{MaxTokens: 8})
	if err != nil || len(a.Tokens) == 0 {
		t.Fatalf("Chat: %v", err)
	}
	b, _ := s.GenerateTokens(context.Background(), toks, GenOptions{MaxTokens: 8})
	if !reflect.DeepEqual(a.Tokens, b.Tokens) || a.Stats.PromptTokens != len(toks) {
		t.Fatalf("Chat %v != GenerateTokens(ChatTokens) %v", a.Tokens, b.Tokens)
	}

	pre, _ := m.Tokenize("<|fim_prefix|>", ParseSpecial)
	suf, _ := m.Tokenize("<|fim_suffix|>", ParseSpecial)
	mid, _ := m.Tokenize("<|fim_middle|>", ParseSpecial)
	ft, err := m.FIMTokens("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := func(id int32) int {
		for i, x := range ft {
			if x == id {
				return i
			}
		}
		return -1
	}
	if !(idx(pre[0]) >= 0 && idx(pre[0]) < idx(suf[0]) && idx(suf[0]) < idx(mid[0]) && idx(mid[0]) == len(ft)-1) {
		t.Fatalf("FIM tokens not prefix<suffix<middle(last): %v", ft)
	}
	f, err := s.FIM(context.Background(), "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n", nil, GenOptions{MaxTokens: 6})
	g, _ := s.GenerateTokens(context.Background(), ft, GenOptions{MaxTokens: 6})
	if err != nil || !reflect.DeepEqual(f.Tokens, g.Tokens) {
		t.Fatalf("FIM %v (%v) != GenerateTokens(FIMTokens) %v", f.Tokens, err, g.Tokens)
	}
	repo := &FIMContext{RepoName: "demo", Files: []FIMFile{{"util.py", "def sub(a, b):\n    return a - b\n"}}, TargetPath: "main.py"}
	rt, err := m.FIMTokens("x = ", "\n", repo)
	if err != nil || len(rt) <= len(ft)/2 {
		t.Fatalf("repo-level FIM: %v (%d tokens)", err, len(rt))
	}
}

func TestCloseIdempotent(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	m, err := Load(modelPath, WithGPULayers(0))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSession(WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("model Close with a live session: %v, want ErrBusy", err)
	}
	if _, err := m.Tokenize("still open"); err != nil {
		t.Fatalf("model unusable after a refused Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second session Close: %v", err)
	}
	if _, err := s.Generate(context.Background(), prompt, GenOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Generate on a closed session: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second model Close: %v", err)
	}
	if _, err := m.Tokenize("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Tokenize on a closed model: %v", err)
	}
	if _, err := m.NewSession(); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewSession on a closed model: %v", err)
	}

	// Close while another goroutine generates: the generation is cancelled, Close waits.
	m2, _ := Load(modelPath, WithGPULayers(0))
	s2, _ := m2.NewSession(WithThreads(1), WithContextSize(4096))
	started := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		var once sync.Once
		_, err := s2.Generate(context.Background(), prompt, GenOptions{MaxTokens: -1, Stream: func(string) error {
			once.Do(func() { close(started) })
			return nil
		}})
		res <- err
	}()
	<-started
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, ErrCancelled) {
		t.Fatalf("generation closed under it: %v", err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
}
