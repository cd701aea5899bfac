"""One adapter per client library: the same small interface, each client's own API underneath."""
