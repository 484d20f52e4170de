"""emojax.train (filled by its issue)."""
