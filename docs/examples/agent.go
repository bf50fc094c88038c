// agent.go - a Go program calling libcoderinfer in-process: it loads a model once, then runs a
// few "agent" requests concurrently, each in its own session, streaming one of them and giving
// every request a deadline.
//
// Build and run from bindings/go (so the module resolves), against the build tree:
//
//	make lib
//	cd bindings/go && PKG_CONFIG_PATH=$PWD/../../build go run ../../docs/examples/agent.go MODEL.gguf
//
// (after `make install`, PKG_CONFIG_PATH is not needed for a standard prefix).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	coder "github.com/libcoderinfer/coderinfer-go"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: agent MODEL.gguf")
		os.Exit(2)
	}
	model, err := coder.Load(os.Args[1])
	if errors.Is(err, coder.ErrIO) {
		fmt.Fprintln(os.Stderr, "cannot read the model:", err)
		os.Exit(3)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	defer model.Close()
	fmt.Fprintf(os.Stderr, "libcoderinfer %s\n", coder.Version())

	// 1. Streaming one completion to stdout, stopped by a deadline if it runs too long.
	s, err := model.NewSession()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	res, err := s.Generate(ctx, "def is_prime(n):", coder.GenOptions{
		MaxTokens: 96,
		Stop:      []string{"\ndef ", "\nclass "},
		Stream: func(piece string) error {
			fmt.Print(piece)
			return nil
		},
	})
	cancel()
	fmt.Println()
	if errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(os.Stderr, "deadline: stopped after %d tokens\n", len(res.Tokens))
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	fmt.Fprintf(os.Stderr, "[%s, %d tokens, %.1f tok/s]\n", res.StopReason, len(res.Tokens), res.Stats.DecodeTPS)
	s.Close()

	// 2. Several requests at once: one session per goroutine on the shared model.
	tasks := []string{"def reverse_words(s):", "func Max(a, b int) int {", "fn fibonacci(n: u64) -> u64 {"}
	out := make([]string, len(tasks))
	var wg sync.WaitGroup
	for i, prompt := range tasks {
		wg.Add(1)
		go func(i int, prompt string) {
			defer wg.Done()
			sess, err := model.NewSession(coder.WithThreads(2))
			if err != nil {
				out[i] = err.Error()
				return
			}
			defer sess.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r, err := sess.Generate(ctx, prompt, coder.GenOptions{MaxTokens: 48})
			out[i] = prompt + r.Text // after a deadline: the partial completion
			if err != nil {
				out[i] += "\n[" + err.Error() + "]"
			}
		}(i, prompt)
	}
	wg.Wait()
	for _, o := range out {
		fmt.Printf("----\n%s\n", o)
	}

	// 3. Chat and fill-in-the-middle helpers.
	s2, _ := model.NewSession()
	defer s2.Close()
	if r, err := s2.Chat(context.Background(), []coder.Message{
		{Role: "user", Content: "Write a one-line Python lambda that squares x."},
	}, coder.GenOptions{MaxTokens: 40}); err == nil {
		fmt.Printf("---- chat\n%s\n", r.Text)
	} else if errors.Is(err, coder.ErrTemplate) {
		fmt.Fprintln(os.Stderr, "model has no chat template")
	}
	if r, err := s2.FIM(context.Background(), "def add(a, b):\n    return ", "\n", nil,
		coder.GenOptions{MaxTokens: 16, Stop: []string{"\n"}}); err == nil {
		fmt.Printf("---- fim\nreturn %s\n", r.Text)
	} else if errors.Is(err, coder.ErrUnsupported) {
		fmt.Fprintln(os.Stderr, "model has no FIM tokens")
	}
}
