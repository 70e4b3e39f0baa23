"""Devices: camera drivers behind one interface, spectral file formats, output links."""
