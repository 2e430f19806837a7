"""C sources at the bottom of the stack: rendering the Jinja templates, printing arrays as C,
per-core compiler flags and QEMU machines, and compiling C for the host. Every layer that
emits or builds C (features, native, recognize, codegen, emulate) uses these; nothing here
knows about models, boards or bundles."""
