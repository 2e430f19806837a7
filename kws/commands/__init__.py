"""What the top-level `kws` commands do end to end, above every pipeline layer: `kws train`
(train.py), `kws bench` (bench.py), `kws demo` (demo.py) and `kws stream`, which sends a WAV to
a serial board (serial_send.py; not to be confused with kws.streams, the evaluation streams)."""
