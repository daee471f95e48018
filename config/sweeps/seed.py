"""Seed noise: the baseline three times with different seeds (init and data order). The spread is the
yardstick for every other sweep here: a margin smaller than it is not a finding."""
title = "Seed noise"
question = "How much does the final val bits per byte move when only the seed changes?"
runs = {f"seed={s}": {"seed": s} for s in (1337, 1, 2)}
