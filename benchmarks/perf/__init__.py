"""The performance suite: every stage timed side by side against a reference, medians of N.

    python benchmarks/perf.py all --repeat 3          # every suite on tiny, then the doc
    python benchmarks/perf.py train eval --repeat 5   # some suites
    python benchmarks/perf.py doc                     # docs/BENCHMARKS.md from the JSON

Suites (each prints a table and writes benchmarks/results/perf-<suite>-<profile>.json):

- synth:   `salmubench synth` with 1 and all workers (images/s per core), and the render
           cost per image measured on a sample, extrapolated to the paper profile;
- train:   `salmubench train` (the real command, its loop) vs a bare forward/backward loop
           of the same model on in-memory tensors (our loss), vs the same loop with
           OpenCLIP's ClipLoss (OpenCLIP's trainer step without its data pipeline), and
           1 vs 2 processes under torchrun (and 1 process at 1 thread);
- eval:    `salmubench eval` (embedding vs the ten metrics) vs a naive evaluator that
           re-embeds every split a metric reads, per metric;
- unlearn: `salmubench unlearn` steps/s for every method; DELETE and CLIPErase also with
           the original model embedding the forget batch too (the behaviour before
           `Method.original_reads`), side by side;
- e2e:     `salmubench bench` on a fresh folder, once (not repeated: it is the long one);
- doc:     render docs/BENCHMARKS.md from the JSON results.

Every measurement is a fresh process (peak RSS from wait4 of that process tree); the
variants of a comparison run interleaved (A, B, A, B, ...), and ratios are medians of
per-round ratios, so a noisy neighbour disturbs both sides alike. `os.getloadavg()` is
recorded around every run.
"""
