"""Measurement: detection fidelity (mAP against the unsplit model) and the codec benchmark."""
