"""Worker processes: take jobs from the queue and deliver them over SMTP."""
