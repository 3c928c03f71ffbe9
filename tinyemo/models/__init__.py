"""The base models: their registry, their folders in models/base/, their loaders."""
