"""The optimisation: Laplacian texture, VGG-19, losses, depth-split patches, photo content targets, the optimiser loop."""
