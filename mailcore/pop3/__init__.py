"""POP3 (RFC 1939) with CAPA (RFC 2449), response codes (RFC 2449, RFC 3206), SASL PLAIN
(RFC 5034) and STLS (RFC 2595) on the account's INBOX. See docs/pop3.md."""
