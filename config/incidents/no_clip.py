"""No gradient clipping. At the baseline's LR clipping rarely acts, so this run also raises the LR;
the incident lab compares it with the same run with clipping on (grad_clip=1.0)."""
grad_clip = 0.0
learning_rate = 1e-2
