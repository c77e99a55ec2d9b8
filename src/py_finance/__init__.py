"""py-finance: a point-in-time ML trading stack."""
