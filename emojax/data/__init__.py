"""emojax.data (filled by its issue)."""
