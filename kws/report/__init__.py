"""The training run's bundle reports: metrics (`report.json`), the confusion-matrix picture
(`confusion.png`) and the model card (`MODEL_CARD.md`). Pure numpy + matplotlib + jinja2."""
