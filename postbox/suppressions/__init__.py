"""The suppression list: addresses Postbox never sends to again, and the feeds that fill it."""
