"""Views of the webmail, one module per area: auth, mailbox, message, compose, settings."""
