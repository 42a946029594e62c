"""Layer 4: metadata and durability. The store is the source of truth; indexes rebuild from it."""
