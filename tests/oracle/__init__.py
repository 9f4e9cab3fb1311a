"""Optional tests against a real framework (TensorFlow); skipped when it is not installed."""
