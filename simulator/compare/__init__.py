"""Side-by-side comparison of several scenarios (`simulator compare`)."""
