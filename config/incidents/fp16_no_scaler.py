"""Precision mistake: fp16 autocast with no loss scaler (train.py refuses this without the flag).
The lab compares it with the same run with the scaler on."""
dtype = "float16"
fp16_no_scaler = True
