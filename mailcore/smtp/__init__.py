"""SMTP: inbound MX and authenticated submission, on aiosmtpd (see docs/smtp.md)."""
