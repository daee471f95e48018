"""Memory surprise: the run was planned (plan.py) with activation checkpointing at the baseline's batch;
incident_probes.memory_probe measures the peak of the same model without checkpointing, and with the batch
doubled, against that plan. No training run: the probe measures a few steps in a fresh process."""
activation_checkpointing = True   # what was planned
