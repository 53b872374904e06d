"""Evaluation: metrics, the held-out split, the offline suite, baselines, reports, MTEB and plots."""
