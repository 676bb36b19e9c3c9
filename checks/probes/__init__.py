"""Active network probes: what a server really offers, as opposed to what its config says."""
