"""The optimisation: Laplacian texture, VGG-19, losses, depth-split patches, photo content targets, the optimiser loop.

Named apart from the API function `meshstyle.stylize`: a subpackage of that name would replace the
function on the package whenever one of its modules is imported."""
