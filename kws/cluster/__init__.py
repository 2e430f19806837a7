"""Many trainings at once on Ray: a local instance by default, or a running cluster."""
