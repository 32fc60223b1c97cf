"""Pipeline layer: code fingerprints, sweep workspaces, the Slurm check and local cluster, and the
opt-in warm server. Imports any layer below; nothing below imports it."""
