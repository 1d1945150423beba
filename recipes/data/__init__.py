"""Corpus building: sentences from text, synthetic voices, audio and layouts."""
