"""The portal's pages, one module per audience; each renders what an API handler answers."""
