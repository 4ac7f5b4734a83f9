"""The package's version, in one place (the User-Agent carries it)."""

VERSION = "0.1.0"
