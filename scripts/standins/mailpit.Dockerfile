# Stand-in for axllent/mailpit: an SMTP sink on 1025 (aiosmtpd, from the wheelhouse) with
# the part of Mailpit's HTTP API on 8025 that scripts/compose-test.sh reads.
FROM python:3.11-slim-bookworm
RUN pip install aiosmtpd==1.4.6
COPY mailpit_sink.py /usr/local/bin/mailpit_sink.py
EXPOSE 1025 8025
CMD ["python", "/usr/local/bin/mailpit_sink.py"]
