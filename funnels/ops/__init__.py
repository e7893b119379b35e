"""What ops do: decide on steps in doubt."""
