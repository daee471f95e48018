"""Duplicated data: incidents.py writes data/<dataset>_dup: 2,000 tokens of the dataset's train split
repeated 40 times, with a planted passage after every other copy; the val bins are the dataset's own."""
dataset += "_dup"
