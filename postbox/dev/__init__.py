"""The development run (`postbox dev`) and the real local services it and the tests start."""
