"""People: users, leaders, regions and invite links."""
