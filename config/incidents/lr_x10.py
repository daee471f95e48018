"""Learning-rate disaster: the baseline's learning rate (and its floor) times ten."""
learning_rate = 3e-2
min_lr = 3e-3
