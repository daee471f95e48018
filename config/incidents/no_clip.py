"""No gradient clipping. At the baseline's LR the gradient norm stays below the clip (1.0), so this run
uses lr_x10's learning rate, where it does not; the incident lab compares it with that same run clipped
(which is lr_x10 itself)."""
grad_clip = 0.0
learning_rate *= 10
min_lr *= 10
