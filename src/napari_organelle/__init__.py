"""napari-organelle: which organelle does this protein label?"""

__version__ = "0.1.0"
