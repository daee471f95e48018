"""Loss does not fall: the baseline's learning rate (and its floor) divided by a hundred."""
learning_rate /= 100
min_lr /= 100
