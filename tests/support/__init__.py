"""What the tests share: the funnel kit over real databases, the e2e harness
against the local Bot API server, sample scripts, waiting, and reading back what was stored."""
