"""The HTTP surface: health, and later events, tracked links, stats and the dashboard."""
