"""Continuous test streams: keywords at known times over background noise, a keyword-free
negative stream, scoring as FRR per keyword and false accepts per hour, and recognizer tuning.

- `build`: stream construction (`build_stream`, `build_negative_stream`, `stream_suite`).
- `score`: the matching rule, FRR / FA-per-hour, the exact vectorized recognizer, sweeps.
- `tune`: decisions for K staggered states, the grid search, `apply_tuning`.
"""
