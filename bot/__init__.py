"""The funnelbot service: composition root, settings, Telegram, HTTP, scheduler and CLI."""
