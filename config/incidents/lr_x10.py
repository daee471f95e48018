"""Learning-rate disaster: the baseline's learning rate (and its floor) times ten."""
learning_rate *= 10
min_lr *= 10
