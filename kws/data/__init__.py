"""Data layer: robust audio reading, the Speech Commands loader, synthesis and augmentation."""
