"""The warm-up group: joins, chatter, red envelopes, the answers to the pitch, admissions."""
