"""Evaluation without inference: label maps in, scores and one report out (metrics, prediction files, report)."""
