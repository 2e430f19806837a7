"""Export of the trained GRU to the device: the int8 one-time-step TFLite model, its state
quantization fix-up, the host-side interpreters that run it, and the bundle manifest."""
