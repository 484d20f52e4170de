"""emojax.ops (filled by its issue)."""
