"""Wrong optimizer: SGD with momentum 0.9 instead of AdamW, same learning-rate schedule."""
optimizer = "sgd"
momentum = 0.9
