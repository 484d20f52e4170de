"""emojax.losses (filled by its issue)."""
