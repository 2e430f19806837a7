"""Scoring a bundle: the backends that run it (one registry, kws.evaluation.backends), 1 s
clip accuracy (`kws eval`) and speaker cross-validation (`kws bench --cv`)."""
