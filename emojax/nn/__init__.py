"""emojax.nn (filled by its issue)."""
