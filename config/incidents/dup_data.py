"""Duplicated data: incidents.py writes data/incidents_dup, 4,000 tokens of data/default's train split
repeated 40 times, with a planted passage every 4 copies; val is data/default's own."""
dataset = "incidents_dup"
