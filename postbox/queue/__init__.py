"""The queue contract and the only code that knows bullmq."""
