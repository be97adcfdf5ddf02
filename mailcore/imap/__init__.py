"""IMAP4rev1/IMAP4rev2 server: ``parser`` (bytes to commands), ``session`` (state machine),
``server`` (asyncio streams, TLS, limits), ``response`` (formatting), ``selectors`` (reads)."""
