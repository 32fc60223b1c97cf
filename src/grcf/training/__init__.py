"""Training layer: losses (the spec), the model and its backbone spec, the training loop, evaluation,
metrics. Imports only data and the base."""
