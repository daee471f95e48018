"""Duplicated data: incidents.py writes a corpus with real repeats (the dataset's first train documents,
plus a few short ones and a planted passage each copied dozens of times, as mirrored pages are in a
crawl) and prepares it twice with prepare.py: data/<dataset>_dup with --no-dedup (this run) and
data/<dataset>_dedup with its dedup (the fixed run). Both keep the dataset's own val bins."""
dataset += "_dup"
