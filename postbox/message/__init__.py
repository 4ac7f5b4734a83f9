"""An email as a message: the rules its parts follow (addresses, header text, attachments),
the types a validated email is made of, and its rendering into RFC 5322 text."""
