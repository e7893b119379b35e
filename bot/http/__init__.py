"""The HTTP surface: health and readiness, and the Telegram webhook."""
