"""The HTTP API: validates requests and enqueues jobs; it never sends mail itself."""
