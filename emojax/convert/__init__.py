"""emojax.convert (filled by its issue)."""
