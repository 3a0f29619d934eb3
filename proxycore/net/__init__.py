"""Wire formats, independent of layers and sockets."""
