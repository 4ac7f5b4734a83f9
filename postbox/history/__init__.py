"""The email history: a durable record of every accepted email, kept in a database.

Redis stays the queue; the recorder (recorder.py) reads the delivery-event stream and writes
the records (store.py) into PostgreSQL or SQLite through SQLAlchemy Core (database.py).
"""
