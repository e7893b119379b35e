"""The Telegram side: the messenger and its throttles, rendering and catalogues, the
routers, the update inbox and long polling."""
