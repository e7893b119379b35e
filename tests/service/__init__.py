"""The service's own parts on their own, without I/O: throttles, rendering and the
locale catalogues, the raw readers, argument parsing, the routers' middleware."""
