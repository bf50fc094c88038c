#!/usr/bin/env python3
"""script.py - libcoderinfer from Python: stream a completion, chat, fill in the middle, count
tokens, run threads with their own sessions. Ctrl-C stops the generation cleanly.

    make lib && pip install ./bindings/python          # or PYTHONPATH=bindings/python
    CODERINFER_LIB=build/libcoderinfer.so.0 python3 docs/examples/script.py MODEL.gguf
(after `make install`, CODERINFER_LIB is not needed)."""
import sys
import threading

import coderinfer


def main(path):
    print("libcoderinfer", coderinfer.lib_version(), "from", coderinfer.lib_path, file=sys.stderr)
    try:
        model = coderinfer.Model(path)
    except coderinfer.CoderIOError as e:
        sys.exit("cannot read %s: %s" % (path, e.message))
    except coderinfer.CoderError as e:  # FormatError, UnsupportedError, ...
        sys.exit("cannot load %s: %s (status %d)" % (path, e.message, e.status))

    with model, model.session() as s:
        prompt = "def is_prime(n):"
        print("prompt: %d tokens" % len(model.tokenize(prompt)), file=sys.stderr)

        # 1. Streaming. Ctrl-C cancels inside the library; the session stays usable.
        try:
            with s.generate(prompt, max_tokens=96, temperature=0, stop=["\ndef "], stream=True) as stream:
                sys.stdout.write(prompt)
                for piece in stream:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
            print("\n[%s, %.1f tok/s]" % (stream.result.stop_reason, stream.result.stats["decode_tps"]),
                  file=sys.stderr)
        except KeyboardInterrupt:
            print("\n[interrupted]", file=sys.stderr)

        # 2. Chat in the model's own format (message text cannot inject control tokens).
        try:
            r = s.chat([{"role": "system", "content": "You are a terse coding assistant."},
                        {"role": "user", "content": "Reverse a string in Python."}], max_tokens=64, temperature=0)
            print("---- chat\n" + r.text)
        except coderinfer.TemplateError:
            print("(no chat format for this model)", file=sys.stderr)

        # 3. Fill in the middle.
        try:
            r = s.fim("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n", max_tokens=16, temperature=0,
                      stop=["\n"])
            print("---- fim\nreturn " + r.text)
        except coderinfer.UnsupportedError:
            print("(no FIM tokens in this vocabulary)", file=sys.stderr)

    # 4. Threads: one model, one session per thread.
    with coderinfer.Model(path) as model:
        prompts = ["def reverse_words(s):", "def flatten(xs):", "def gcd(a, b):"]
        out = [None] * len(prompts)

        def work(i):
            with model.session(n_threads=2) as sess:
                out[i] = prompts[i] + sess.generate(prompts[i], max_tokens=40, temperature=0).text

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for o in out:
            print("----\n" + o)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: script.py MODEL.gguf")
    main(sys.argv[1])
