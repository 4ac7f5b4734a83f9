"""The queue: its contract (job data, statuses, ids, key names, the send journal), the
operations on it, the API's bridge to it and the consumer. The only code that knows bullmq;
bullmq's internals are kept in the private `_engine` package."""
