"""Metrics of a stylized mesh: circles, style, content, seams, coverage."""
