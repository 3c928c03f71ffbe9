"""TinyEmo companion: emotion classification by metric projection, and emotional reasoning."""
__version__ = "0.1.0"
