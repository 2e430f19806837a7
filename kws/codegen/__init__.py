"""Code generation: Jinja rendering, C tables, and compiling generated C for the host."""
