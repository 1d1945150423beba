"""Training recipes and data preparation; they import speech, never the reverse."""
