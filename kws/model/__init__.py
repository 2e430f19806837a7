"""The keyword model: GRU definition, data preparation, training and a simple baseline."""
